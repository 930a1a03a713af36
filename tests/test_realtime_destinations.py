"""Intraday events go through every configured destination with the same once-only
guarantees: two real destinations (the outbox file and the fake Customer.io HTTP server); one
fails, the other is not sent anything twice, the failed one gets exactly what it missed once
it recovers, and a restarted consumer sends nothing again. A slow destination does not delay
segmentation."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import duckdb
import pytest
from support.realtime_world import SNAPSHOT_DAY, new_user_before_setup

from contracts import tracking_plan
from orchestration.activation.destinations import CustomerIODestination, OutboxDestination
from orchestration.activation.destinations.http import RetryPolicy
from orchestration.activation.fake_customerio import FakeConfig, FakeCustomerIO
from orchestration.realtime.app import milestone_events
from orchestration.realtime.consumer import Consumer
from orchestration.realtime.events import encode, normalise
from orchestration.realtime.profiles import ProfileReader
from orchestration.realtime.reconcile import mark_delivered_events
from orchestration.realtime.stream import RedisStream

FAST = {"retry": RetryPolicy(max_retries=1, base_delay=0.001), "timeout": (2.0, 2.0)}


def _outbox_ids(directory) -> Counter:
    ids: Counter = Counter()
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            ids.update(item["id"] for item in json.loads(line)["batch"])
    return ids


def _consumer(world, stream, tmp_path, cio_url, destinations=None):
    destinations = destinations or [
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


def _new_users_before_setup(world, n: int) -> list[str]:
    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        rows = conn.execute(
            "select s.user_id from main.user_segments s join main.fct_user_features f "
            "on f.user_id = s.user_id and f.snapshot_date = s.segment_date "
            "where s.segment_date = $d and s.primary_segment = 'new_users' "
            "and not f.reached_first_project and f.days_since_signup < 5 order by 1 limit $n",
            {"d": SNAPSHOT_DAY, "n": n},
        ).fetchall()
    assert len(rows) == n, "the synthetic world has too few new users before setup"
    return [r[0] for r in rows]


def _wait_for_flow_change(reader, user: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while reader.profile(user)["onboarding_flow"] == "new_user_onboarding":
        assert time.monotonic() < deadline, f"{user}'s flow never changed"
        time.sleep(0.02)


def test_a_slow_destination_does_not_delay_segmentation(world, redis_url, tmp_path):
    """Customer.io answers every request after 3 s: while the first user's events are
    still on their way there, the second user's event is already segmented (sends run on
    the output worker, not in the consumer loop); then everything arrives exactly once."""
    first, second = _new_users_before_setup(world, 2)
    stream = RedisStream(redis_url, "t:slow-destination")
    reader = ProfileReader(world.snapshot, tmp_path / "state.sqlite", world.config, {})
    now = datetime.now(UTC)
    with FakeCustomerIO(FakeConfig(site_id="site", api_key="key", latency_s=3.0)) as cio:
        destinations = [
            OutboxDestination(tmp_path / "outbox"),
            CustomerIODestination(
                base_url=cio.url,
                site_id="site",
                api_key="key",
                rate_limit=0,
                retry=RetryPolicy(max_retries=1, base_delay=0.001),
                timeout=(10.0, 10.0),
            ),
        ]
        consumer = _consumer(world, stream, tmp_path, cio.url, destinations)
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop, 100), daemon=True)
        thread.start()
        try:
            for user in (first, second):
                stream.append(
                    [encode(normalise({"userId": user, "event": "Project Created"}, "track", now))]
                )
                _wait_for_flow_change(reader, user)
                assert cio.event_receipts == Counter()  # the first send is still in flight
            deadline = time.monotonic() + 30
            while not cio.event_receipts or set(cio.event_receipts) != set(
                _outbox_ids(tmp_path / "outbox")
            ):
                assert time.monotonic() < deadline, "Customer.io never got the events"
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(timeout=30)
    outbox = _outbox_ids(tmp_path / "outbox")
    assert len(outbox) >= 4 and max(outbox.values()) == 1  # exited + trigger, per user
    assert cio.event_receipts == outbox
