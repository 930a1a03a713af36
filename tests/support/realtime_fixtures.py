"""Fixtures the real-time test modules share (a pytest plugin, tests/conftest.py): one real
redis-server and one small built world per module."""

from __future__ import annotations

import pytest

from support.realtime import redis_or_skip
from support.realtime_world import build_world


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = redis_or_skip(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"))
