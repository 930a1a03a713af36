"""What the vendor fakes (LaunchDarkly, Intercom) share: an in-process HTTP server on
127.0.0.1, fixed-window rate limiting with the vendor's headers, fault knobs (forced statuses,
random 5xx, dropped connections, a "kill after N requests" hook) and a request log.

A subclass implements `authorized(headers)`, `route(method, path, query, body)` returning
(status, json body), `error_body(status, code, message)` and `rate_headers(limit, remaining,
reset_epoch_s)`. Everything runs under one lock, so the fake is a consistent store.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class FaultConfig:
    """Knobs shared by the vendor fakes. `rate_limit` requests per `rate_window_s` window."""

    rate_limit: int | None = None
    rate_window_s: float = 10.0
    retry_after: int | None = None  # also send Retry-After on a 429
    fail_rate: float = 0.0
    fail_statuses: tuple[int, ...] = (500, 502, 503)
    drop_rate: float = 0.0
    forced_statuses: list[int] = field(default_factory=list)  # consumed, one per request
    kill_after_requests: int | None = None
    latency_s: float = 0.0
    seed: int | None = 0


class QuietServer(ThreadingHTTPServer):
    """Threaded server of every vendor fake."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that vanish (killed, timed out) are part of the test plan, not errors."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class ServedFake:
    """Lifecycle of an in-process fake served by `self._server` (a QuietServer):
    `with FakeX(...) as fake: fake.url ...`, or `serve_forever()` from a command."""

    _server: QuietServer

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        # A short poll: `stop()` waits up to one poll interval (the default 0.5 s, per test).
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeAPI(ServedFake):
    """Base of the vendor fakes: `with FakeX(...) as fake: fake.url ...`."""

    label = "fake"

    def __init__(
        self,
        faults: FaultConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_kill: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.faults = faults or FaultConfig()
        self.on_kill = on_kill
        self.lock = threading.RLock()
        self.request_log: list[dict[str, Any]] = []
        self.status_counts: Counter[str] = Counter()
        self._clock = clock
        self._rng = random.Random(self.faults.seed)
        self._window_start = 0.0
        self._window_count = 0
        self._server = QuietServer((host, port), self._handler_class())

    # -- to implement --------------------------------------------------------------------
    def authorized(self, headers: Any) -> bool:
        raise NotImplementedError

    def route(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def error_body(self, status: int, code: str, message: str) -> Any:
        raise NotImplementedError

    def rate_headers(self, limit: int, remaining: int, reset_s: float) -> dict[str, str]:
        return {}

    def snapshot(self) -> dict[str, Any]:
        return {}

    # -- lifecycle -----------------------------------------------------------------------
    def configure(self, **knobs: Any) -> None:
        with self.lock:
            for name, value in knobs.items():
                if not hasattr(self.faults, name):
                    raise ValueError(f"unknown fault knob {name!r}")
                setattr(self.faults, name, value)

    @property
    def request_count(self) -> int:
        return len(self.request_log)

    # -- request handling ----------------------------------------------------------------
    def _window(self) -> tuple[int, int, float, bool]:
        """(limit, remaining, reset epoch s, over) for the current fixed window."""
        f = self.faults
        now = self._clock()
        if now - self._window_start >= f.rate_window_s:
            self._window_start, self._window_count = now, 0
        limit = f.rate_limit or 0
        over = bool(limit) and self._window_count >= limit
        if not over:
            self._window_count += 1
        remaining = max(0, limit - self._window_count) if limit else 0
        return limit, remaining, self._window_start + f.rate_window_s, over

    def _decide(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[int | None, Any, dict[str, str]]:
        split = urlsplit(target)
        f = self.faults
        with self.lock:
            entry = {"n": len(self.request_log) + 1, "method": method, "path": split.path}
            self.request_log.append(entry)
            number = entry["n"]
            if f.drop_rate and self._rng.random() < f.drop_rate:
                entry["status"] = "dropped"
                self.status_counts["dropped"] += 1
                return None, None, {}
            extra: dict[str, str] = {}
            if not self.authorized(headers):
                status, payload = 401, self.error_body(401, "unauthorized", "Access denied")
            else:
                limit, remaining, reset, over = self._window()
                if limit:
                    extra = self.rate_headers(limit, remaining, reset)
                if over:
                    status = 429
                    payload = self.error_body(429, "rate_limit_exceeded", "Rate limit exceeded")
                    if f.retry_after is not None:
                        extra["Retry-After"] = str(f.retry_after)
                elif f.forced_statuses:
                    status = f.forced_statuses.pop(0)
                    payload = self.error_body(status, "forced", f"forced status {status}")
                elif f.fail_rate and self._rng.random() < f.fail_rate:
                    status = self._rng.choice(f.fail_statuses)
                    payload = self.error_body(status, "server_error", "injected failure")
                else:
                    query = parse_qs(split.query)
                    status, payload = self.route(method, split.path, query, headers, body)
            entry["status"] = status
            self.status_counts[str(status)] += 1
            kill = f.kill_after_requests is not None and number == f.kill_after_requests
        if kill and self.on_kill is not None:
            self.on_kill()
        return status, payload, extra

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # never log auth
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if urlsplit(self.path).path == "/_fake/state":
                    with fake.lock:
                        status, payload, extra = 200, fake.snapshot(), {}
                else:
                    if fake.faults.latency_s:
                        time.sleep(fake.faults.latency_s)
                    status, payload, extra = fake._decide(
                        self.command, self.path, self.headers, body
                    )
                if status is None:
                    self.close_connection = True
                    return
                data = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler


# -- the `fake-<vendor>` commands ---------------------------------------------------------------
def add_fake_arguments(
    parser: argparse.ArgumentParser, *, port: int, token_env: str, rate_limit: int
) -> argparse.ArgumentParser:
    """Options every vendor fake's command takes."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=port, help="port to listen on")
    parser.add_argument(
        "--token", default=None, help=f"access token accepted (default: ${token_env})"
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=rate_limit,
        help="requests per 10 s window (0 = unlimited)",
    )
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of random 5xx")
    return parser


def command_faults(args: argparse.Namespace) -> FaultConfig:
    """The faults asked for on the command line (unseeded: a served fake is not a test)."""
    return FaultConfig(rate_limit=args.rate_limit or None, fail_rate=args.fail_rate, seed=None)


def serve_fake(fake: FakeAPI, vendor: str, url_env: str) -> int:
    """Serve until interrupted; prints the URL (never the token)."""
    print(f"fake {vendor} listening on {fake.url}; export {url_env}={fake.url}")
    fake.serve_forever()
    return 0
