"""A replayed day: today's events go through the stream and the consumer, then the daily
step assigns the same day from features that include those events. Intraday and daily agree
for every user who acted, the events the consumer delivered carry the ids the daily sync
computes, and once recorded as acknowledged the daily sync would not send them again."""

from __future__ import annotations

import json
import random
import sqlite3

import duckdb
import pytest
from support.realtime import redis_or_skip
from support.realtime_world import SNAPSHOT_DAY, TODAY, build_world, moment_today

from contracts import tracking_plan
from orchestration.activation.destinations import OutboxDestination
from orchestration.activation.payload import PayloadOptions, desired_events
from orchestration.activation.state import load_acked_event_ids
from orchestration.realtime.app import milestone_events
from orchestration.realtime.consumer import Consumer
from orchestration.realtime.events import QUARANTINE, encode, normalise, reject_reason
from orchestration.realtime.reconcile import compare_day, mark_delivered_events
from orchestration.realtime.stream import RedisStream
from orchestration.segments import assign_segments

pytestmark = pytest.mark.slow
MILESTONE_EVENTS = ["Account Created", "Project Created", "Teammate Invited", "Report Created"]


def _replay_messages(users: list[str], seed: int = 3) -> tuple[list[dict], dict[str, set]]:
    rng = random.Random(seed)
    known = tracking_plan.load().known_events
    messages, milestones = [], {}
    for user in users:
        for event in ["Dashboard Viewed", *rng.sample(MILESTONE_EVENTS, rng.randint(0, 3))]:
            message = normalise(
                {"type": "track", "userId": user, "event": event}, None, moment_today()
            )
            reason = reject_reason(message, known)
            assert reason is None, reason
            messages.append(message)
            milestone = milestone_events().get(event)
            if milestone:
                milestones.setdefault(user, set()).add(milestone)
    messages.append(
        {**messages[0], "messageId": "bad-1", "event": "Nope", QUARANTINE: {"reason_code": "x"}}
    )
    return messages, milestones


def _daily_day(conn, milestones: dict[str, set], config) -> None:
    """Day TODAY's features as the daily build computes them from the landed events:
    yesterday's row, one day older, with the milestones reached today."""
    features = conn.execute(
        "select * from main.fct_user_features where snapshot_date = $d", {"d": SNAPSHOT_DAY}
    ).df()
    features["snapshot_date"] = TODAY
    features["days_since_signup"] += 1
    for user, reached in milestones.items():
        for milestone in reached:
            features.loc[features["user_id"] == user, f"reached_{milestone}"] = True
    conn.register("_today", features)
    conn.execute("insert into main.fct_user_features by name select * from _today")
    conn.execute(
        "insert into main.user_scores select * replace ($t::DATE as score_date) "
        "from main.user_scores where score_date = $d",
        {"t": TODAY, "d": SNAPSHOT_DAY},
    )
    assign_segments(conn, config, [TODAY])


def test_daily_run_and_intraday_state_agree_on_a_replayed_day(tmp_path):
    redis = redis_or_skip(tmp_path / "redis")
    try:
        world = build_world(tmp_path / "world", users=300)
        present = world.features[world.features["snapshot_date"] == SNAPSHOT_DAY]
        users = sorted(present["user_id"].unique())[::3]  # every third user acts today
        messages, milestones = _replay_messages(users)
        stream = RedisStream(redis.url, "segflow:events")
        stream.append([encode(m) for m in messages])
        consumer = Consumer(
            stream,
            tmp_path / "state.sqlite",
            world.snapshot,
            tmp_path / "landing",
            world.config,
            milestone_events(),
            tracking_plan.load().known_events,
            destinations=[OutboxDestination(tmp_path / "outbox")],
        )
        while consumer.step(block_ms=100):
            pass
        consumer.close()
    finally:
        redis.stop()

    with duckdb.connect(str(world.warehouse)) as conn:
        _daily_day(conn, milestones, world.config)
        result = compare_day(conn, tmp_path / "state.sqlite", TODAY)
        assert result.compared == len(users)
        assert result.differing == 0, result.examples
        changed = conn.execute(
            "select count(*) from main.user_segments t join main.user_segments y "
            "on t.user_id = y.user_id and y.segment_date = $y where t.segment_date = $t "
            "and t.onboarding_flow <> y.onboarding_flow",
            {"t": TODAY, "y": SNAPSHOT_DAY},
        ).fetchone()[0]
        assert changed > 0, "the replay changed nobody's flow: the test would prove nothing"

        realtime_names = {"segment_entered", "segment_exited", "created_first_project"}
        daily = {
            e.event_id
            for e in desired_events(conn, TODAY, PayloadOptions())
            if e.person_id in set(users) and e.name in realtime_names and e.timestamp >= _ts(TODAY)
        }
        with sqlite3.connect(tmp_path / "state.sqlite") as db:
            emitted = {r[0] for r in db.execute("select event_id from emitted where sent = 1")}
        assert daily and daily == emitted
        assert mark_delivered_events(conn, tmp_path / "state.sqlite", "outbox") == len(emitted)
        assert mark_delivered_events(conn, tmp_path / "state.sqlite", "outbox") == 0
        assert daily <= load_acked_event_ids(conn, "outbox", _ts(TODAY))

    landed = [
        json.loads(line)
        for f in (tmp_path / "landing" / "events").glob("dt=*/rt-*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert len(landed) == len(messages) and all(QUARANTINE not in m for m in landed)


def _ts(day) -> int:
    from datetime import UTC, datetime

    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
