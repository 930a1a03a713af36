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
from pathlib import Path

import pytest
from support.realtime import redis_or_skip
from support.realtime_world import build_world

from contracts import tracking_plan
from orchestration.realtime.consumer import GROUP
from orchestration.realtime.events import encode, normalise, reject_reason
from orchestration.realtime.stream import RedisStream

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


def _messages(world, n: int) -> list[dict]:
    from datetime import UTC, datetime

    users = sorted(world.features["user_id"].unique())[:150]
    received = datetime.now(UTC)
    out = []
    for i in range(n):
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


def test_sigkilled_consumer_loses_and_doubles_nothing(setup):
    redis, world, env, tmp_path = setup
    state = tmp_path / "realtime" / "state.sqlite"
    stream = RedisStream(redis.url, "segflow:events")
    messages = _messages(world, 6000)
    for start in range(0, len(messages), 500):
        stream.append([encode(m) for m in messages[start : start + 500]])
    for _ in range(2):
        process, before = _consumer(env), _hwm(state)
        deadline = time.monotonic() + 60
        while _hwm(state) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert stream.lag(GROUP).total > 0, "the kills came too late to test anything"
    process = _consumer(env)
    deadline = time.monotonic() + 90
    while stream.lag(GROUP).total and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the last batch's files and events are written right after its ack
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, process.stderr.read().decode()
    assert stream.lag(GROUP).total == 0

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
