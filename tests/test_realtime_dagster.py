"""The Dagster hand-over: `realtime_snapshot` swaps the snapshot in atomically, marks the
events the consumer delivered as acknowledged for the daily sync, and reports the consumer's
lag, throughput and rule evaluations as metadata and in `main.realtime_runs`, which the
report's realtime page draws."""

from __future__ import annotations

import sqlite3

import dagster as dg
import duckdb
from support.realtime import redis_or_skip
from support.realtime_world import SNAPSHOT_DAY, build_world, new_user_before_setup

from contracts import tracking_plan
from orchestration.activation.destinations import OutboxDestination
from orchestration.defs.realtime import realtime_snapshot
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.realtime.app import milestone_events
from orchestration.realtime.consumer import Consumer
from orchestration.realtime.events import encode, normalise
from orchestration.realtime.stream import RedisStream
from orchestration.report import build_report


def test_realtime_snapshot_asset(tmp_path, monkeypatch):
    redis = redis_or_skip(tmp_path / "redis")
    try:
        world = build_world(tmp_path / "world", users=120)
        realtime = tmp_path / "realtime"
        for name, value in {
            "SEGFLOW_HOME": tmp_path / "home",
            "SEGFLOW_REALTIME_DIR": realtime,
            "SEGFLOW_REDIS_URL": redis.url,
            "SEGFLOW_SEGMENTS_FILE": world.segments_file,
            "SEGFLOW_TRIGGERS_FILE": world.triggers_file,
        }.items():
            monkeypatch.setenv(name, str(value))
        user = new_user_before_setup(world)
        stream = RedisStream(redis.url, "segflow:events")
        consumer = Consumer(
            stream,
            realtime / "state.sqlite",
            world.snapshot,
            tmp_path / "landing",
            world.config,
            milestone_events(),
            tracking_plan.load().known_events,
            destinations=[OutboxDestination(tmp_path / "outbox")],
        )
        stream.append(
            [encode(normalise({"userId": user, "event": "Project Created"}, "track", _now()))]
        )
        while consumer.step(block_ms=50):
            pass
        stream.append([encode(normalise({"userId": user, "event": "X"}, "track", _now()))])

        result = dg.materialize(
            [realtime_snapshot],
            resources={
                "warehouse": WarehouseResource(duckdb_path=str(world.warehouse)),
                "segflow": SegflowSettingsResource(),
            },
            partition_key=SNAPSHOT_DAY.isoformat(),
        )
    finally:
        redis.stop()
    assert result.success
    meta = result.asset_materializations_for_node("realtime_snapshot")[0].metadata
    assert meta["snapshot_date"].value == SNAPSHOT_DAY.isoformat()
    with sqlite3.connect(realtime / "snapshot.sqlite") as db:
        users = db.execute("select count(*) from users").fetchone()[0]
    assert meta["snapshot_users"].value == users > 0
    assert meta["stream_lag"].value == 1  # the second message was never consumed
    assert meta["consumer_events_applied"].value == 1
    assert meta["consumer_rule_evaluations"].value > 0
    emitted = meta["consumer_events_emitted"].value
    assert emitted >= 2 and meta["intraday_events_marked_acked"].value == emitted
    assert meta["consumer_events_per_busy_second"].value > 0
    assert meta["consumer_deferred_users"].value == 0  # caught up: nothing waits
    assert meta["intraday_events_marked_acked_by_destination"].value == {"outbox": emitted}
    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        acked = conn.execute("select count(*) from main.sync_acked_events").fetchone()[0]
        run = conn.execute(
            "select snapshot_date, stream_lag, events_applied, rule_evaluations, "
            "intraday_compared from main.realtime_runs"
        ).fetchall()
    assert acked == emitted
    assert run == [
        (
            SNAPSHOT_DAY,
            1,
            1,
            meta["consumer_rule_evaluations"].value,
            meta["intraday_users_compared"].value,
        )
    ]
    report = build_report(world.warehouse, tmp_path / "report")  # the realtime page shows it
    assert "realtime.html" not in report.missing and report.pages["realtime.html"] == 3
    assert "stream lag (last hand-over)" in (tmp_path / "report" / "realtime.html").read_text()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
