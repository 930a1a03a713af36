"""`segflow report --serve`: the report folder over http on 127.0.0.1, so the links in Dagster
metadata (a web page, which browsers forbid to open file:// links) open. Loopback only: the
report shows customer-level numbers."""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

HOST = "127.0.0.1"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        return


def report_server(folder: Path, port: int) -> ThreadingHTTPServer:
    """A server for `folder` on 127.0.0.1:`port` (0: a free port); call serve_forever()."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    return ThreadingHTTPServer((HOST, port), handler)


def port_of(url: str) -> int:
    """The port of SEGFLOW_REPORT_URL (80 when it names none)."""
    return urlparse(url).port or 80
