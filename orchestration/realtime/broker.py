"""Start a private redis-server (Debian package) for the real-time path: used by
`segflow broker` and by the tests, which each get their own server on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class BrokerUnavailable(RuntimeError):
    """redis-server is not installed (run `make redis`)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    process: subprocess.Popen
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(directory: Path, port: int = 0, timeout_s: float = 10.0) -> RedisServer:
    """redis-server on 127.0.0.1:`port` (0: a free one) storing its append-only file in
    `directory` (`appendonly yes`, fsync every second: a broker crash loses at most ~1 s)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BrokerUnavailable("redis-server is not installed; run `make redis`")
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)]
    args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    args += ["--protected-mode", "yes", "--logfile", str(directory / "redis.log")]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerUnavailable(f"redis-server exited; see {directory / 'redis.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return RedisServer(process, port, directory)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise BrokerUnavailable(f"redis-server did not answer on port {port} in {timeout_s} s")
