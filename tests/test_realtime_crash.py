"""A `segflow consume` process killed with SIGKILL (twice, mid-stream) and restarted loses
and doubles nothing: every message lands in the landing files exactly once, the intraday
counts equal the messages sent, and every emitted event is delivered with a unique id."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.realtime import redis_or_skip
from support.realtime_world import build_world

from contracts import tracking_plan
from orchestration.realtime.consumer import GROUP
from orchestration.realtime.events import encode, normalise, reject_reason
from orchestration.realtime.stream import RedisStream, _id_key

pytestmark = pytest.mark.slow
EVENTS = ["Dashboard Viewed", "Report Created", "Project Created", "Teammate Invited"]


@pytest.fixture
def setup(tmp_path):
    redis = redis_or_skip(tmp_path / "redis")
    world = build_world(tmp_path / "world", users=200)
    realtime = tmp_path / "realtime"
    realtime.mkdir()
    os.replace(world.snapshot, realtime / "snapshot.sqlite")
    env = {
        **os.environ,
        "SEGFLOW_HOME": str(tmp_path / "home"),
        "SEGFLOW_REDIS_URL": redis.url,
        "SEGFLOW_REALTIME_DIR": str(realtime),
        "SEGFLOW_SOURCE": "files",
        "SEGFLOW_LANDING_DIR": str(tmp_path / "landing"),
        "SEGFLOW_OUTBOX_DIR": str(tmp_path / "outbox"),
        "SEGFLOW_SEGMENTS_FILE": str(world.segments_file),
        "SEGFLOW_TRIGGERS_FILE": str(world.triggers_file),
    }
    yield redis, world, env, tmp_path
    redis.stop()


def _messages(world, n: int, first: int = 0) -> list[dict]:
    users = sorted(world.features["user_id"].unique())[:150]
    received = datetime.now(UTC)
    out = []
    for i in range(first, first + n):
        message = {
            "type": "track",
            "userId": users[i % len(users)],
            "event": EVENTS[(i // len(users)) % len(EVENTS)],
            "messageId": f"m-{i}",
        }
        out.append(normalise(message, None, received))
    return out


def _consumer(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "consume"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _hwm(state: Path) -> str | None:
    if not state.exists():
        return None
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
            row = db.execute("select value from meta where key = 'hwm'").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _wait(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def test_sigkilled_consumer_loses_and_doubles_nothing(setup):
    """Kill 1 lands right after a batch commits (before or after its XACK); kill 2 lands
    while a batch is read but not committed (the stream holds it pending for the dead
    consumer, the high-water mark has not moved)."""
    redis, world, env, tmp_path = setup
    state = tmp_path / "realtime" / "state.sqlite"
    stream = RedisStream(redis.url, "segflow:events")
    known = _messages(world, 5000)
    strangers = [  # a slow batch: 5,000 users the snapshot does not know, each evaluated
        normalise({"userId": f"new-{i}", "event": "Account Created"}, "track", datetime.now(UTC))
        for i in range(5000)
    ]
    messages = known + strangers + _messages(world, 5000, first=5000)

    last = stream.append([encode(m) for m in known])[-1]
    process = _consumer(env)
    _wait(lambda: _hwm(state) == last, "the first batch to commit")
    process.send_signal(signal.SIGKILL)
    process.wait()

    stream.append([encode(m) for m in strangers])
    process = _consumer(env)

    def in_flight() -> bool:
        pending = stream.client.xpending(stream.key, GROUP)
        return pending["pending"] > 0 and _id_key(pending["min"].decode()) > _id_key(last)

    _wait(in_flight, "the second batch to be read")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _hwm(state) == last, "the second kill came after the commit: nothing tested"

    stream.append([encode(m) for m in messages[10000:]])
    process = _consumer(env)
    _wait(lambda: stream.lag(GROUP).total == 0, "the stream to drain", 120)
    time.sleep(0.3)  # the last batch's files and events are written right after its ack
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, process.stderr.read().decode()

    lines = [
        json.loads(line)
        for f in (tmp_path / "landing" / "events").glob("dt=*/rt-*.jsonl")
        for line in f.read_text().splitlines()
    ]
    ids = Counter(m["messageId"] for m in lines)
    assert len(ids) == len(messages) and max(ids.values()) == 1, ids.most_common(3)

    known = tracking_plan.load().known_events
    expected = Counter(
        (m["userId"], m["event"]) for m in messages if reject_reason(m, known) is None
    )
    with sqlite3.connect(state) as db:
        got = Counter()
        for user, counts in db.execute("select user_id, counts from user_day"):
            for event, n in json.loads(counts).items():
                got[(user, event)] += n
        emitted = {r[0] for r in db.execute("select event_id from emitted")}
        unsent = db.execute("select count(*) from emitted where sent = 0").fetchone()[0]
    assert got == expected
    outbox = [
        item["id"]
        for f in (tmp_path / "outbox").glob("*.jsonl")
        for line in f.read_text().splitlines()
        for item in json.loads(line)["batch"]
    ]
    assert emitted and unsent == 0 and set(outbox) == emitted
