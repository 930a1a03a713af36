"""A local fake of the Customer.io Track API for tests and demos.

Implements what /work/shared/reference/customerio-api.md documents for the endpoints segflow
uses: `POST /api/v2/batch` (200 / 207 with `batch_index` errors / 400), `POST /api/v2/entity`,
v1 `PUT /api/v1/customers/{id}` and `POST /api/v1/customers/{id}/events` (400 with
`{"meta":{"error":..}}`), `GET /api/v1/accounts/region`; Basic auth (401 otherwise); identify
merge semantics with removal by "" or null; event de-duplication by `id`; the documented size
limits. Undocumented behaviour is a knob (oversize status, 429 and Retry-After, 5xx share,
latency, dropped connections, stalls past the client timeout, forced per-id failures, and a
"kill after N requests" hook for crash tests). It records what it accepted for assertions.
The API's semantics and limits are in fake_customerio_api.py; this module is the server.

Run: `python -m orchestration.activation.fake_customerio --port 8765 --site-id S --api-key K`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import fields
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from .fake_customerio_api import FakeConfig, TrackAPI
from .fake_http import QuietServer, ServedFake

__all__ = ["FakeConfig", "FakeCustomerIO", "add_arguments", "main", "serve"]


class FakeCustomerIO(TrackAPI, ServedFake):
    """In-process server: `with FakeCustomerIO(config) as fake: ... fake.url ...`."""

    def __init__(
        self,
        config: FakeConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_kill: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.on_kill = on_kill
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._server = QuietServer((host, port), self._handler_class())

    # -- lifecycle: ServedFake -----------------------------------------------------------
    def configure(self, **knobs: Any) -> None:
        """Change knobs while running (e.g. turn faults off before a re-run)."""
        names = {f.name for f in fields(FakeConfig)}
        with self._lock:
            for name, value in knobs.items():
                if name not in names:
                    raise ValueError(f"unknown FakeConfig knob {name!r}")
                setattr(self.config, name, value)

    # -- inspection --------------------------------------------------------------------
    @property
    def people(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._store.people.items()}

    @property
    def events(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._store.events.items()}

    @property
    def event_receipts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._store.event_receipts)

    @property
    def received_items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._store.received_items)

    @property
    def suppressed(self) -> set[str]:
        with self._lock:
            return set(self._store.suppressed)

    @property
    def anonymous_events(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._store.anonymous_events)

    @property
    def request_count(self) -> int:
        return self._store.requests

    @property
    def status_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._store.status_counts)

    @property
    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._store.request_log)

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        return decoded == f"{self.config.site_id}:{self.config.api_key}"

    def _rate_limited(self, now: float) -> bool:
        limit = self.config.rate_limit
        if not limit:
            return False
        while self._window and now - self._window[0] >= self.config.rate_window_s:
            self._window.popleft()
        if len(self._window) >= limit:
            return True
        self._window.append(now)
        return False

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without NODELAY, Nagle + delayed ACK
                # add ~40 ms per keep-alive request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet, never log auth
                return

            def _respond(
                self,
                status: int,
                payload: dict[str, Any] | None,
                headers: dict[str, str] | None = None,
            ) -> None:
                body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                if path == "/_fake/state":
                    with fake._lock:
                        snapshot = {
                            "people": len(fake._store.people),
                            "events": len(fake._store.events),
                            "requests": fake._store.requests,
                            "status_counts": dict(fake._store.status_counts),
                        }
                    self._respond(200, snapshot)
                    return
                cfg = fake.config
                with fake._lock:
                    fake._store.requests += 1
                    number = fake._store.requests
                    roll = fake._rng.random
                    drop = cfg.drop_rate and roll() < cfg.drop_rate
                    stall = cfg.stall_rate and roll() < cfg.stall_rate
                    fail = cfg.fail_rate and roll() < cfg.fail_rate
                    fail_status = fake._rng.choice(cfg.fail_statuses)
                if cfg.latency_s:
                    time.sleep(cfg.latency_s)
                status, payload, headers = self._decide(number, body, path, drop, fail, fail_status)
                if status is None:
                    return
                if stall and cfg.stall_s:
                    with fake._lock:
                        fake._store.status_counts["stalled"] += 1
                    time.sleep(cfg.stall_s)
                try:
                    self._respond(status, payload, headers)
                except OSError:
                    self.close_connection = True

            def _decide(
                self, number: int, body: bytes, path: str, drop: bool, fail: bool, fail_status: int
            ) -> tuple[int | None, Any, dict[str, str]]:
                cfg = fake.config
                with fake._lock:
                    entry = {
                        "n": number,
                        "method": self.command,
                        "path": path,
                        "bytes": len(body),
                        "status": None,
                    }
                    fake._store.request_log.append(entry)
                    if drop:
                        entry["status"] = "dropped"
                        fake._store.status_counts["dropped"] += 1
                        self.close_connection = True
                        return None, None, {}
                    headers: dict[str, str] = {}
                    if not fake._authorized(self.headers.get("Authorization")):
                        status, payload = 401, {"meta": {"error": "Unauthorized request"}}
                    elif fake._rate_limited(time.monotonic()):
                        status, payload = 429, None
                        if cfg.retry_after is not None:
                            headers["Retry-After"] = f"{cfg.retry_after:g}"
                    elif cfg.forced_statuses:
                        status = cfg.forced_statuses.pop(0)
                        payload = {"meta": {"error": f"forced status {status}"}}
                        if status in (429, 503) and cfg.retry_after is not None:
                            headers["Retry-After"] = f"{cfg.retry_after:g}"
                    elif fail:
                        status, payload = fail_status, {"meta": {"error": "injected failure"}}
                    else:
                        status, payload = fake._route(self.command, path, body)
                    entry["status"] = status
                    fake._store.status_counts[str(status)] += 1
                    kill = cfg.kill_after_requests is not None and number == cfg.kill_after_requests
                if kill and fake.on_kill is not None:
                    fake.on_kill()
                return status, payload, headers

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

        return Handler


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The server's options (shared by `segflow fake-customerio` and `python -m`)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on")
    parser.add_argument(
        "--site-id",
        default=None,
        help="site id accepted (default: $CUSTOMERIO_SITE_ID or fake-site)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key accepted (default: $CUSTOMERIO_API_KEY or fake-key)",
    )
    parser.add_argument("--region", choices=("us", "eu"), default="us", help="API region")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=1000.0,
        help="requests per second before 429 (the published limit; 0 = unlimited)",
    )
    parser.add_argument(
        "--retry-after",
        type=int,
        default=None,
        help="send Retry-After: N on 429 (default: no header, as documented)",
    )
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of random 5xx")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        help="share of requests whose connection is closed without response",
    )
    parser.add_argument(
        "--stall-rate", type=float, default=0.0, help="share of requests held for --stall-seconds"
    )
    parser.add_argument(
        "--stall-seconds", type=float, default=0.0, help="how long a stalled request is held"
    )
    parser.add_argument(
        "--oversize-status",
        type=int,
        choices=(400, 413),
        default=413,
        help="status for a request over the size limit",
    )
    parser.add_argument(
        "--fail-id",
        action="append",
        default=[],
        help="person id whose items are always rejected (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed of fault injection")
    return parser


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog="segflow fake-customerio",
            description="Local fake of the Customer.io Track API.",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
    )


def config_from_args(args: argparse.Namespace) -> FakeConfig:
    return FakeConfig(
        site_id=args.site_id or os.environ.get("CUSTOMERIO_SITE_ID") or "fake-site",
        api_key=args.api_key or os.environ.get("CUSTOMERIO_API_KEY") or "fake-key",
        region=args.region,
        rate_limit=args.rate_limit or None,
        retry_after=args.retry_after,
        fail_rate=args.fail_rate,
        latency_s=args.latency,
        drop_rate=args.drop_rate,
        stall_rate=args.stall_rate,
        stall_s=args.stall_seconds,
        oversize_status=args.oversize_status,
        fail_ids=set(args.fail_id),
        seed=args.seed,
        record_items=False,
    )


def main(argv: list[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve until interrupted. Prints the URL to put in CUSTOMERIO_TRACK_URL (never the key)."""
    config = config_from_args(args)
    fake = FakeCustomerIO(config, host=args.host, port=args.port)
    print(
        f"fake Customer.io listening on {fake.url} (site id {config.site_id}); "
        f"export CUSTOMERIO_TRACK_URL={fake.url}",
        flush=True,
    )
    fake.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
