"""The daily run reconciles the intraday path: its result wins (serve switches to the new
snapshot), the intraday answers it replaces are compared with it and the differences counted,
and the events the consumer already delivered are recorded as acknowledged in the sync core's
`sync_acked_events`, so the daily sync does not send the same event (same deterministic id)
a second time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from orchestration.activation.state import ensure_tables as ensure_sync_tables
from orchestration.realtime import state

FIELDS = ("segments", "primary_segment", "onboarding_flow", "experiment_variant", "next_block")


@dataclass
class Reconciliation:
    day: date
    compared: int = 0
    agreed: int = 0
    differences: dict[str, int] = field(default_factory=dict)  # field -> users differing
    examples: list[dict] = field(default_factory=list)
    events_marked_acked: int = 0

    @property
    def differing(self) -> int:
        return self.compared - self.agreed


def compare_day(
    conn: duckdb.DuckDBPyConnection, state_path: Path, day: date, examples: int = 5
) -> Reconciliation:
    """Intraday profiles of `day` against the daily run's `user_segments` for `day`."""
    result = Reconciliation(day, differences=dict.fromkeys(FIELDS, 0))
    if not state_path.exists():
        return result
    db = state.connect(state_path, readonly=True)
    try:
        live = db.execute(
            "select user_id, segments, primary_segment, onboarding_flow, experiment_variant, "
            "next_block from profile where day = ?",
            (day.isoformat(),),
        ).fetchall()
    finally:
        db.close()
    daily = {
        r[0]: r[1:]
        for r in conn.execute(
            "select user_id, segments, primary_segment, onboarding_flow, experiment_variant, "
            "next_block from main.user_segments where segment_date = $d",
            {"d": day},
        ).fetchall()
    }
    for user, segments, *rest in live:
        ours = (sorted(json.loads(segments)), *rest)
        theirs = daily.get(user)
        theirs = (sorted(theirs[0] or []), *theirs[1:]) if theirs else (None,) * len(FIELDS)
        result.compared += 1
        diff = [f for f, a, b in zip(FIELDS, ours, theirs, strict=True) if a != b]
        if not diff:
            result.agreed += 1
            continue
        for name in diff:
            result.differences[name] += 1
        if len(result.examples) < examples:
            result.examples.append(
                {
                    "user_id": user,
                    **{
                        f: {"intraday": ours[FIELDS.index(f)], "daily": theirs[FIELDS.index(f)]}
                        for f in diff
                    },
                }
            )
    return result


def mark_delivered_events(
    conn: duckdb.DuckDBPyConnection, state_path: Path, destination: str
) -> int:
    """Record the events the consumer delivered to `destination` in `sync_acked_events`;
    returns rows added."""
    if not state_path.exists():
        return 0
    db = state.connect(state_path, readonly=True)
    try:
        rows = db.execute(
            "select e.event_id, e.person_id, e.name, e.ts from emitted e join delivered d "
            "on d.event_id = e.event_id where d.destination = ?",
            (destination,),
        ).fetchall()
    finally:
        db.close()
    if not rows:
        return 0
    ensure_sync_tables(conn)
    before = conn.execute("select count(*) from main.sync_acked_events").fetchone()[0]
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.executemany(
        "insert into main.sync_acked_events values (?, ?, ?, ?, ?, ?) on conflict do nothing",
        [(destination, eid, person, name, ts, now) for eid, person, name, ts in rows],
    )
    return conn.execute("select count(*) from main.sync_acked_events").fetchone()[0] - before


def consumer_stats(state_path: Path) -> dict[str, float | int | None]:
    """The consumer's running totals (events applied/quarantined, rule evaluations, intraday
    profiles, events emitted/unsent, users whose new-day re-evaluation still waits), its
    throughput while busy (events per second of batch processing) and when it last
    committed a batch."""
    if not state_path.exists():
        return {}
    db = state.connect(state_path, readonly=True)
    try:
        out: dict[str, float | int | None] = {
            key: int(state.get_meta(db, key, "0") or 0)
            for key in ("events_applied", "events_quarantined", "rule_evaluations", "busy_ms")
        }
        busy = int(out["busy_ms"] or 0) / 1000
        handled = int(out["events_applied"] or 0) + int(out["events_quarantined"] or 0)
        out["events_per_busy_second"] = round(handled / busy, 1) if busy else None
        last = state.get_meta(db, "last_batch_at")
        out["last_batch_at"] = float(last) if last else None
        out["intraday_profiles"] = db.execute("select count(*) from profile").fetchone()[0]
        out["events_emitted"] = db.execute("select count(*) from emitted").fetchone()[0]
        out["events_unsent"] = db.execute("select count(*) from emitted where sent = 0").fetchone()[
            0
        ]
        if db.execute("select 1 from sqlite_master where name = 'deferred'").fetchone():
            out["deferred_users"] = db.execute("select count(*) from deferred").fetchone()[0]
    finally:
        db.close()
    return out


RUNS_DDL = """
create table if not exists main.realtime_runs (
    recorded_at timestamp not null, snapshot_date date not null, stream_lag bigint,
    events_applied bigint, events_quarantined bigint, rule_evaluations bigint,
    events_per_busy_second double, intraday_profiles bigint, events_emitted bigint,
    events_unsent bigint, intraday_compared bigint, intraday_differing bigint,
    last_batch_at timestamp
)"""
RUN_COUNTERS = (
    "events_applied",
    "events_quarantined",
    "rule_evaluations",
    "events_per_busy_second",
    "intraday_profiles",
    "events_emitted",
    "events_unsent",
)


def record_run(
    conn: duckdb.DuckDBPyConnection,
    day: date,
    lag: int | None,
    stats: dict[str, float | int | None],
    result: Reconciliation,
) -> None:
    """One row per daily hand-over in `main.realtime_runs` (the report's realtime page):
    the stream lag, the consumer's running totals and the reconciliation."""
    conn.execute(RUNS_DDL)
    last = stats.get("last_batch_at")
    conn.execute(
        "insert into main.realtime_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            datetime.now(UTC).replace(tzinfo=None),
            day,
            lag,
            *(stats.get(key) for key in RUN_COUNTERS),
            result.compared,
            result.differing,
            datetime.fromtimestamp(last, UTC).replace(tzinfo=None) if last else None,
        ],
    )
