"""Intraday events go through every configured destination with the same once-only
guarantees: two real destinations (the outbox file and the fake Customer.io HTTP server); one
fails, the other is not sent anything twice, the failed one gets exactly what it missed once
it recovers, and a restarted consumer sends nothing again."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import duckdb
import pytest
from support.realtime import redis_or_skip
from support.realtime_world import build_world, new_user_before_setup

from contracts import tracking_plan
from orchestration.activation.destinations import CustomerIODestination, OutboxDestination
from orchestration.activation.destinations.http import RetryPolicy
from orchestration.activation.fake_customerio import FakeConfig, FakeCustomerIO
from orchestration.realtime.app import milestone_events
from orchestration.realtime.consumer import Consumer
from orchestration.realtime.events import encode, normalise
from orchestration.realtime.reconcile import mark_delivered_events
from orchestration.realtime.stream import RedisStream

FAST = {"retry": RetryPolicy(max_retries=1, base_delay=0.001), "timeout": (2.0, 2.0)}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = redis_or_skip(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"))


def _outbox_ids(directory) -> Counter:
    ids: Counter = Counter()
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            ids.update(item["id"] for item in json.loads(line)["batch"])
    return ids


def _consumer(world, stream, tmp_path, cio_url):
    destinations = [
        OutboxDestination(tmp_path / "outbox"),
        CustomerIODestination(
            base_url=cio_url, site_id="site", api_key="key", rate_limit=0, **FAST
        ),
    ]
    return Consumer(
        stream,
        tmp_path / "state.sqlite",
        world.snapshot,
        tmp_path / "landing",
        world.config,
        milestone_events(),
        tracking_plan.load().known_events,
        destinations=destinations,
    )


def test_events_reach_every_destination_once(world, redis_url, tmp_path):
    user = new_user_before_setup(world)
    stream = RedisStream(redis_url, "t:two-destinations")
    with FakeCustomerIO(FakeConfig(site_id="site", api_key="key")) as cio:
        consumer = _consumer(world, stream, tmp_path, cio.url)
        cio.configure(fail_rate=1.0)  # Customer.io down: every request answers 5xx
        now = datetime.now(UTC)
        stream.append(
            [encode(normalise({"userId": user, "event": "Project Created"}, "track", now))]
        )
        while consumer.step(block_ms=50):
            pass
        outbox = _outbox_ids(tmp_path / "outbox")
        assert outbox and max(outbox.values()) == 1  # segment_exited + the realtime trigger
        assert cio.event_receipts == Counter()
        with duckdb.connect() as conn:  # only what a destination acknowledged counts as sent
            assert mark_delivered_events(conn, tmp_path / "state.sqlite", "outbox") == len(outbox)
            assert mark_delivered_events(conn, tmp_path / "state.sqlite", "customerio") == 0

        cio.configure(fail_rate=0.0)  # back: the idle consumer retries what it missed
        consumer.step(block_ms=50)
        assert set(cio.event_receipts) == set(outbox)
        assert max(cio.event_receipts.values()) == 1
        assert _outbox_ids(tmp_path / "outbox") == outbox  # the outbox got nothing twice
        consumer.close()

        # a restart (same state file) and the same milestone again: nothing is sent twice
        restarted = _consumer(world, stream, tmp_path, cio.url)
        stream.append(
            [encode(normalise({"userId": user, "event": "Project Created"}, "track", now))]
        )
        while restarted.step(block_ms=50):
            pass
        restarted.close()
        assert _outbox_ids(tmp_path / "outbox") == outbox
        assert max(cio.event_receipts.values()) == 1 and set(cio.event_receipts) == set(outbox)


def test_a_destination_listed_twice_is_refused(world, redis_url, tmp_path):
    with pytest.raises(ValueError, match="each destination may appear once"):
        Consumer(
            RedisStream(redis_url, "t:twice"),
            tmp_path / "state.sqlite",
            world.snapshot,
            tmp_path / "landing",
            world.config,
            milestone_events(),
            tracking_plan.load().known_events,
            destinations=[OutboxDestination(tmp_path / "a"), OutboxDestination(tmp_path / "b")],
        )
