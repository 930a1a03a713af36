"""Test tooling for the real-time path: a private redis-server per test module, and the
collector / consumer wired to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contracts import tracking_plan
from orchestration.realtime.broker import BrokerUnavailable, RedisServer, start_redis
from orchestration.realtime.collector import CollectorServer
from orchestration.realtime.stream import RedisStream

WRITE_KEY = "wk_test_123"


def redis_or_skip(directory: Path) -> RedisServer:
    try:
        return start_redis(directory)
    except BrokerUnavailable as exc:
        pytest.skip(f"{exc} (make redis installs it)")


@contextmanager
def running_collector(redis_url: str, key: str = "segflow:events") -> Iterator[CollectorServer]:
    server = CollectorServer(
        ("127.0.0.1", 0),
        RedisStream(redis_url, key),
        [WRITE_KEY],
        tracking_plan.load().known_events,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
