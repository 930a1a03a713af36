"""Time the daily job's steps after scoring one at a time, on a copy of a history that has
run its new day, and keep what each wrote for a byte comparison between two commits.

    .venv/bin/python bench/after_scoring.py --home H --pre P --out OUT [--steps a,b] [--repeats N]

H is a SEGFLOW_HOME after the day's `segflow run` (a copy: this writes into it); P holds what
the steps change, as it was before that run (P/pre.duckdb: the sync, realtime, membership
and trigger tables; P/outbox): every step starts from it, so a re-run sends what the day's
run sent. Clocks and run ids are fixed, so the outbox lines, people/events CSVs, sync_state,
the snapshot's rows and the report pages are comparable byte for byte (OUT/<step>/...).
Prints wall and CPU seconds (this process, all threads) per step and the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIXED_NOW = dt.datetime(2026, 12, 6, 2, 0, 0, tzinfo=dt.UTC)
PRE_TABLES = (
    "sync_state",
    "sync_acked_events",
    "sync_journal",
    "sync_failures",
    "sync_runs",
    "realtime_runs",
    "segment_membership",
    "user_triggers",
)
STEPS = ("segments", "experiments", "snapshot", "sync", "report", "revenue")


class FixedDatetime(dt.datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: ANN001, ANN206
        return FIXED_NOW if tz else FIXED_NOW.replace(tzinfo=None)


def freeze_clocks() -> None:
    """The sync's run id, synced_at and acked_at, the realtime run row: fixed."""
    from orchestration.activation import privacy, state, sync
    from orchestration.realtime import reconcile

    for module in (sync, state, privacy, reconcile):
        module.datetime = FixedDatetime
    sync.uuid = type("U", (), {"uuid4": staticmethod(lambda: uuid.UUID(int=7))})


def restore(conn, pre: Path, home: Path, tables=PRE_TABLES) -> None:
    conn.execute(f"attach '{pre / 'pre.duckdb'}' as pre (read_only)")
    try:
        for table in tables:
            conn.execute(f"delete from main.{table}")
            conn.execute(f"insert into main.{table} select * from pre.{table}")
    finally:
        conn.execute("detach pre")
    shutil.rmtree(home / "outbox", ignore_errors=True)
    shutil.copytree(pre / "outbox", home / "outbox")
    shutil.rmtree(home / ".report-svg-cache", ignore_errors=True)  # the history has none


def restored_tables(steps: list[str]) -> list[str]:
    """The tables the chosen steps write, put back as they were before the day's run (the
    others keep the day's result: a sync alone reads the day's membership and triggers)."""
    tables = []
    if "segments" in steps:
        tables += ["segment_membership", "user_triggers"]
    if "snapshot" in steps:
        tables += ["realtime_runs"]
    if "snapshot" in steps or "sync" in steps:
        tables += [t for t in PRE_TABLES if t.startswith("sync_")]
    return tables


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_step(name: str, conn_factory, settings, day: dt.date, out: Path, instance) -> dict:
    from orchestration.defs import segments as seg_defs

    config = seg_defs.CONFIG
    facts: dict = {}
    if name == "segments":
        from orchestration.segments.assign import assign_segments, segment_size_changes

        with conn_factory() as conn:
            report = assign_segments(conn, config, [day])
            facts["warnings"] = segment_size_changes(conn, day, seg_defs.SIZE_CHANGE_SHARE) + list(
                report.warnings
            )
            conn.execute("select count(*) from main.segment_membership").fetchone()
            conn.execute("select count(*) from main.user_triggers").fetchone()
            facts["seconds"] = {k: round(v, 2) for k, v in report.seconds.items()}
    elif name == "experiments":
        from orchestration.segments.experiments import experiment_results

        with conn_factory() as conn:
            as_of = conn.execute("select max(segment_date) from main.user_segments").fetchone()[0]
            res = experiment_results(conn, config, as_of, min_sample=seg_defs.MIN_EXPERIMENT_SAMPLE)
        facts["rows"] = len(res)
    elif name == "snapshot":
        from orchestration.defs.realtime import _stream_lag
        from orchestration.realtime import app
        from orchestration.realtime.reconcile import (
            compare_day,
            consumer_stats,
            mark_delivered_events,
            record_run,
        )
        from orchestration.realtime.snapshot import build_snapshot

        state = app.state_path(settings)
        with conn_factory() as conn:
            facts = build_snapshot(conn, seg_defs.segment_config(), app.snapshot_path(settings))
            result = compare_day(conn, state, day)
            acked = {d: mark_delivered_events(conn, state, d) for d in settings.destinations}
        stats = consumer_stats(state)
        lag = _stream_lag(settings)
        with conn_factory() as conn:
            record_run(conn, day, lag if isinstance(lag, int) else None, stats, result)
        facts["acked"] = acked
    elif name == "sync":
        from orchestration.activation.destinations.outbox import write_readable
        from orchestration.activation.run import sync_all

        with conn_factory() as conn:
            results, _ = sync_all(conn, settings, as_of=day)
            for r in results:
                f = r.destination_facts.get("outbox_file")
                if f:
                    write_readable(conn, f, day)
        facts["status"] = [r.status for r in results]
        facts["people_sent"] = [r.people_sent for r in results]
    elif name == "report":
        from orchestration.defs.report import write_report
        from orchestration.report import build

        real = build.datetime

        class ReportClock(real):
            @classmethod
            def now(cls, tz=None):  # noqa: ANN001, ANN206
                return FIXED_NOW

        build.datetime = ReportClock
        try:
            with conn_factory() as conn:
                write_report(settings, instance, CHECK_KEYS, conn=conn, log=lambda m: None)
        finally:
            build.datetime = real
    elif name == "revenue":
        from expectations.reconcile import check_layers

        with conn_factory() as conn:
            res = check_layers(conn, [day])
        facts["outcomes"] = [o.passed for o in res.outcomes]
    return facts


CHECK_KEYS: object = ()


def keep_outputs(name: str, home: Path, conn_factory, day: dt.date, out: Path) -> None:
    """What the step wrote, as files to compare byte for byte."""
    out.mkdir(parents=True, exist_ok=True)
    with conn_factory() as conn:
        if name == "segments":
            for table, where in (
                ("user_segments", f"segment_date = date '{day}'"),
                ("segment_reasons", f"segment_date = date '{day}'"),
                ("segment_coverage", "true"),
                ("segment_membership", "true"),
                ("user_triggers", "true"),
            ):
                conn.execute(
                    f"copy (select * from main.{table} where {where} order by all) "
                    f"to '{out / table}.csv'"
                )
        elif name == "experiments":
            conn.execute(
                f"copy (select * from main.fct_experiment_results order by all) "
                f"to '{out}/fct_experiment_results.csv'"
            )
        elif name == "snapshot":
            conn.execute(
                f"copy (select * exclude (recorded_at) from main.realtime_runs order by all) "
                f"to '{out}/realtime_runs.csv'"
            )
            conn.execute(
                f"copy (select * from main.sync_acked_events order by all) "
                f"to '{out}/sync_acked_events.csv'"
            )
        elif name == "sync":
            for table in ("sync_state", "sync_acked_events", "sync_failures", "sync_journal"):
                conn.execute(
                    f"copy (select * from main.{table} order by all) to '{out / table}.csv'"
                )
            conn.execute(
                f"copy (select * exclude (duration_s, requests_per_s) from main.sync_runs "
                f"order by all) to '{out}/sync_runs.csv'"
            )
    if name == "snapshot":
        db = sqlite3.connect(home / "realtime" / "snapshot.sqlite")
        with open(out / "snapshot.txt", "w") as fh:
            for table in ("users", "meta", "suppressed"):
                for row in db.execute(f"select * from {table} order by 1"):
                    fh.write(json.dumps(row) + "\n")
        db.close()
    elif name == "sync":
        for f in (home / "outbox").iterdir():
            if "20261206T020000" in f.name:
                shutil.copy(f, out / f.name)
    elif name == "report":
        for f in (home / "report").iterdir():
            shutil.copy(f, out / f.name)


def main() -> int:
    global CHECK_KEYS
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--pre", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--day", default="2026-12-05")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["SEGFLOW_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    from orchestration import warehouse
    from orchestration.settings import Settings

    settings = Settings.from_env()
    freeze_clocks()

    def conn_factory():
        return warehouse.connect(settings.duckdb_path)

    day = dt.date.fromisoformat(args.day)
    steps = args.steps.split(",")
    instance = None
    if "report" in steps:
        import dagster as dg

        from orchestration.definitions import defs as location

        instance = dg.DagsterInstance.get()
        CHECK_KEYS = location().resolve_asset_graph().asset_check_keys
    for _ in range(args.repeats):
        with conn_factory() as conn:
            restore(conn, args.pre, home, restored_tables(steps))
        for name in steps:
            load = os.getloadavg()[0]
            w0, c0 = time.perf_counter(), cpu()
            facts = run_step(name, conn_factory, settings, day, args.out, instance)
            wall, cpu_s = time.perf_counter() - w0, cpu() - c0
            print(
                f"{name:12s} wall {wall:6.2f} s  CPU {cpu_s:6.2f} s  load {load:.1f}  "
                f"{json.dumps(facts, default=str)[:200]}",
                flush=True,
            )
            if args.out:
                keep_outputs(name, home, conn_factory, day, args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
