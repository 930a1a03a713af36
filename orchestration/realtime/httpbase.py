"""The small HTTP layer both servers share (stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive):
JSON replies, body reading with a size cap, credential parsing, and CORS for browser clients
(SEGFLOW_CORS_ORIGINS, default none): an allowed `Origin` is echoed on every reply and an
`OPTIONS` preflight is answered 204; any other origin gets no CORS headers (403 on preflight),
so the browser blocks it."""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import logging
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class BodyTooLarge(ValueError):
    pass


CORS_ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, X-API-Key, If-None-Match"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    cors_origins: tuple[str, ...] = ()  # set by the subclass from Settings.cors_origins

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "segflow"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle + the client's
    # delayed ACK add ~40 ms to every keep-alive response
    disable_nagle_algorithm = True
    cors_methods = "POST, OPTIONS"  # what a preflight may ask for
    cors_expose = ""  # response headers a browser script may read (e.g. ETag)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in {**self.cors_headers(), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def cors_headers(self) -> dict[str, str]:
        """CORS headers for this request's Origin when it is allowed, else none."""
        allowed = self.server.cors_origins  # type: ignore[attr-defined]
        origin = self.headers.get("Origin")
        if not origin or not allowed or ("*" not in allowed and origin not in allowed):
            return {}
        out = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if self.cors_expose:
            out["Access-Control-Expose-Headers"] = self.cors_expose
        return out

    def do_OPTIONS(self) -> None:  # noqa: N802 - stdlib name
        """CORS preflight: 204 with the allowed methods and headers for an allowed origin."""
        if not self.cors_headers():
            self.reply(403, {"message": "origin not allowed (SEGFLOW_CORS_ORIGINS)"})
            return
        self.reply(
            204,
            None,
            {
                "Access-Control-Allow-Methods": self.cors_methods,
                "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )

    def read_body(self, limit: int) -> bytes:
        """The request body (gunzipped when Content-Encoding: gzip), at most `limit` bytes;
        an oversize body is still drained so the connection stays usable."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            while length > 0:
                length -= len(self.rfile.read(min(length, 65536)) or b"x" * length)
            raise BodyTooLarge(f"request body is {self.headers.get('Content-Length')} bytes")
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
            if len(data) > limit:
                raise BodyTooLarge(f"request body is {len(data)} bytes after gunzip")
        return data


def basic_user(header: str | None) -> str | None:
    """The user of an HTTP Basic Authorization header (Segment: the write key), or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def key_matches(candidate: str | None, keys: Iterable[str]) -> bool:
    """Constant-time membership test for API keys."""
    if not candidate:
        return False
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate.encode(), key.encode())
    return found
