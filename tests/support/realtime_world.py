"""A small daily-run world for the real-time tests: contract-shaped features and scores,
the real segment assignment, and the snapshot the consumer and `segflow serve` read.
The segment config is the shipped one (new_users and churn_risks realtime; the new-user
phase ends at the first project), plus a realtime trigger on the first project, so
completing setup mid-day changes the flow and fires once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import duckdb

from orchestration.realtime.snapshot import build_snapshot
from orchestration.segments import (
    DEFAULT_FLOWS_PATH,
    DEFAULT_SEGMENTS_PATH,
    assign_segments,
    load_config,
)
from support.segment_tables import build_frames, write_tables

DAYS = 3
TODAY = datetime.now(UTC).date()  # the collector's receive day: events are "today"
START = TODAY - timedelta(days=DAYS)
SNAPSHOT_DAY = START + timedelta(days=DAYS - 1)


def moment_today() -> datetime:
    """Now, but never past TODAY (fixed when the module was imported): a test that started
    before UTC midnight and sends an event after it still stamps the event on TODAY."""
    return min(datetime.now(UTC), datetime.combine(TODAY, time.max, UTC))


TRIGGERS = """triggers:
  - name: created_first_project
    description: First project created.
    rule: reached_first_project
    realtime: true
  - name: stalled_before_first_project
    description: Account created but no project for 5 days.
    rule: reached_account_created and not reached_first_project
    for_days: 5
"""


@dataclass
class World:
    config: object
    warehouse: Path
    snapshot: Path
    features: object
    segments_file: Path
    triggers_file: Path


def realtime_segments_yaml() -> str:
    """The shipped segments.yml, unchanged (tests append segments to it): its new_users rule
    must be realtime and end with the first project, so completing setup mid-day changes the
    flow with the shipped config."""
    text = DEFAULT_SEGMENTS_PATH.read_text()
    block = re.search(r"  - name: new_users\n(?:    .*\n)+", text)
    assert block and "    realtime: true\n" in block.group(0), "new_users is no longer realtime"
    assert "not reached_first_project" in block.group(0), "new_users no longer ends at setup"
    return text


def build_world(directory: Path, users: int = 300) -> World:
    directory.mkdir(parents=True, exist_ok=True)
    segments_file = directory / "segments.yml"
    segments_file.write_text(realtime_segments_yaml())
    triggers_file = directory / "triggers.yml"
    triggers_file.write_text(TRIGGERS)
    config = load_config(segments_file, DEFAULT_FLOWS_PATH, triggers_file)
    features, scores = build_frames(users=users, days=DAYS, start=START, seed=5)
    if "is_churned" not in features:  # the shipped churn_risks rule reads it (contracts.marts)
        features["is_churned"] = False
    warehouse = directory / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        write_tables(conn, features, scores)
        assign_segments(conn, config, [START + timedelta(days=i) for i in range(DAYS)])
        snapshot = directory / "realtime" / "snapshot.sqlite"
        build_snapshot(conn, config, snapshot)
    return World(config, warehouse, snapshot, features, segments_file, triggers_file)


def new_user_before_setup(world: World) -> str:
    """A user whose primary segment on the snapshot day is new_users (flow
    new_user_onboarding) and who has not created a project yet."""
    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        row = conn.execute(
            "select s.user_id from main.user_segments s join main.fct_user_features f "
            "on f.user_id = s.user_id and f.snapshot_date = s.segment_date "
            "where s.segment_date = $d and s.primary_segment = 'new_users' "
            "and not f.reached_first_project and f.days_since_signup < 5 order by 1 limit 1",
            {"d": SNAPSHOT_DAY},
        ).fetchone()
    assert row, "the synthetic world has no new user before setup"
    return row[0]
