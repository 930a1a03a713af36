"""Benchmark of the dbt transformation layer against a hand-written DuckDB SQL baseline.

Generates demo data (orchestration.sources.demo), loads it into raw.* (orchestration.sources.load),
then measures, each as a separate process so peak memory is the process tree's RSS:
  1. the full dbt build (`dbt run --full-refresh`, all models except tag:after_segments),
  2. one incremental day (the last partition re-run with min_date/max_date),
  3. one hand-written DuckDB SQL script computing the same core tables: de-duplicated and
     stitched events, 30-minute sessions, daily activity and the core features for the last
     snapshot date (a subset of fct_user_features' columns).
Results go to bench/results/transform-<users>x<days>.{json,md}.

    .venv/bin/python bench/transform.py --users 100000 --days 180     # the reference run
    .venv/bin/python bench/transform.py --users 2000 --days 40        # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestration.sources import demo  # noqa: E402
from orchestration.sources.load import load_partitions  # noqa: E402

DBT = Path(sys.executable).parent / "dbt"
TABLES = ("crm_contacts", "events", "billing_invoices")

BASELINE_SQL = """
create or replace table bench_events as
select * exclude (rn) from (
  select message_id, lower(type) as event_type, event as event_name, user_id, anonymous_id,
         "timestamp" as event_at, row_number() over (partition by message_id
           order by received_at, _partition_date, _source_file, _source_line) as rn
  from raw.events where message_id is not null) where rn = 1;
create or replace table bench_identity as
select anonymous_id, arg_min(user_id, (event_at, message_id)) as user_id
from bench_events where anonymous_id is not null and user_id is not null group by 1;
create or replace table bench_stitched as
select e.message_id, coalesce(e.user_id, i.user_id) as user_id, e.event_type, e.event_name, e.event_at
from bench_events e left join bench_identity i on e.user_id is null and e.anonymous_id = i.anonymous_id
where coalesce(e.user_id, i.user_id) is not null;
create or replace table bench_sessions as
with g as (
  select *, case when lag(event_at) over w is null
                   or date_diff('second', lag(event_at) over w, event_at) > 1800 then 1 else 0 end as s
  from bench_stitched window w as (partition by user_id order by event_at, message_id)),
n as (select *, sum(s) over (partition by user_id order by event_at, message_id) as k from g)
select user_id, min(event_at) as session_start, max(event_at) as session_end,
       date_diff('second', min(event_at), max(event_at)) / 60.0 as duration_minutes, count(*) as events
from n group by user_id, k;
create or replace table bench_daily as
select e.user_id, e.d as activity_date, e.events, e.core, e.breadth_today,
       coalesce(s.sessions, 0) as sessions, coalesce(s.minutes, 0) as minutes
from (select user_id, event_at::date as d, count(*) as events,
             count(*) filter (where event_name in $core) as core,
             count(distinct event_name) filter (where event_name in $core) as breadth_today
      from bench_stitched group by 1, 2) e
left join (select user_id, session_start::date as d, count(*) as sessions, sum(duration_minutes) as minutes
           from bench_sessions group by 1, 2) s on s.user_id = e.user_id and s.d = e.d;
create or replace table bench_features as
with snap as (select max(activity_date) as s from bench_daily)
select d.user_id, snap.s as snapshot_date,
       count(*) filter (where activity_date > snap.s - 7) as active_days_7d,
       count(*) filter (where activity_date > snap.s - 28) as active_days_28d,
       sum(events) filter (where activity_date > snap.s - 7) as events_7d,
       sum(events) filter (where activity_date > snap.s - 28) as events_28d,
       sum(sessions) filter (where activity_date > snap.s - 28) as sessions_28d,
       sum(minutes) filter (where activity_date > snap.s - 28)
         / nullif(sum(sessions) filter (where activity_date > snap.s - 28), 0) as avg_session_minutes_28d,
       sum(core) filter (where activity_date > snap.s - 28) as feature_depth_28d,
       max(activity_date) as last_active_date
from bench_daily d, snap where activity_date <= snap.s group by d.user_id, snap.s;
"""


def _measure(cmd: list[str], env: dict[str, str]) -> dict:
    """Run cmd; return wall seconds and the peak RSS of its process tree (sampled every 50 ms)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = parent.memory_info().rss + sum(
                c.memory_info().rss for c in parent.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{out[-4000:]}")
    return {"seconds": round(time.perf_counter() - start, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def _dbt(args: list[str], db: Path, target: Path, dbt_vars: dict | None = None) -> list[str]:
    cmd = [str(DBT), *args, "--project-dir", str(REPO / "dbt_project"), "--profiles-dir",
           str(REPO / "dbt_project"), "--target-path", str(target), "--log-path", str(target)]
    return cmd + (["--vars", json.dumps(dbt_vars)] if dbt_vars else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where data and the DuckDB files go (default: a temp dir)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="segflow-bench-transform-"))
    work.mkdir(parents=True, exist_ok=True)
    start = datetime.now(UTC).date() - timedelta(days=args.days + 1)
    dates = [start + timedelta(days=i) for i in range(args.days)]

    t0 = time.perf_counter()
    demo.generate(work / "landing", work / "truth", args.users, args.days, args.seed, start)
    gen_s = time.perf_counter() - t0
    db = work / "warehouse.duckdb"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    conn = duckdb.connect(str(db))
    try:
        for table in TABLES:
            load_partitions(conn, table, dates, work / "landing", "demo", late_arrival_days=3)
        raw_rows = {t: conn.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()
    load_s = time.perf_counter() - t0

    env = dict(os.environ, SEGFLOW_DUCKDB_PATH=str(db), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    target = work / "dbt_target"
    full = _measure(_dbt(["run", "--full-refresh", "--exclude", "tag:after_segments"], db, target), env)
    last = dates[-1]
    day = _measure(_dbt(["run", "--exclude", "tag:after_segments"], db, target,
                        {"min_date": last.isoformat(),
                         "max_date": (last + timedelta(days=1)).isoformat()}), env)
    parse_only = _measure(_dbt(["parse"], db, target), env)

    from orchestration import tracking_plan
    core = "(" + ", ".join(f"'{e}'" for e in tracking_plan.load().core_features) + ")"
    script = work / "baseline.sql"
    script.write_text(BASELINE_SQL.replace("$core", core))
    runner = ("import duckdb,sys; c=duckdb.connect(sys.argv[1]); c.execute('set threads=2'); "
              "c.execute(open(sys.argv[2]).read()); c.close()")
    baseline = _measure([sys.executable, "-c", runner, str(db), str(script)], env)
    conn = duckdb.connect(str(db), read_only=True)
    try:
        check = {
            "sessions_dbt": conn.execute("select count(*) from main.int_sessions").fetchone()[0],
            "sessions_sql": conn.execute("select count(*) from main.bench_sessions").fetchone()[0],
            "daily_dbt": conn.execute("select count(*) from main.int_user_activity_daily").fetchone()[0],
            "daily_sql": conn.execute("select count(*) from main.bench_daily").fetchone()[0],
            "feature_rows_dbt": conn.execute("select count(*) from main.fct_user_features").fetchone()[0],
        }
    finally:
        conn.close()

    result = {
        "users": args.users, "days": args.days, "seed": args.seed, "date": str(date.today()),
        "cpu_count": os.cpu_count(), "raw_rows": raw_rows,
        "generate_seconds": round(gen_s, 1), "load_seconds": round(load_s, 1),
        "dbt_full_build": full, "dbt_incremental_day": day, "dbt_parse_only": parse_only,
        "hand_sql_core_tables": baseline,
        "ratio_full_build_vs_hand_sql": round(full["seconds"] / max(baseline["seconds"], 0.01), 2),
        "row_counts": check,
        "notes": "dbt builds every model (features for every snapshot day, marts, training sets); "
                 "the hand SQL builds sessions, daily activity and features for ONE snapshot. "
                 "dbt times include ~parse/startup (dbt_parse_only).",
    }
    out = REPO / "bench" / "results" / f"transform-{args.users}x{args.days}"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# transform benchmark: {args.users} users x {args.days} days (seed {args.seed})", "",
          f"raw rows: {raw_rows}", "",
          "| step | seconds | peak RSS MB |", "|---|---|---|",
          f"| dbt full build | {full['seconds']} | {full['peak_rss_mb']} |",
          f"| dbt one incremental day | {day['seconds']} | {day['peak_rss_mb']} |",
          f"| dbt parse only (startup floor) | {parse_only['seconds']} | {parse_only['peak_rss_mb']} |",
          f"| hand-written DuckDB SQL (core tables, 1 snapshot) | {baseline['seconds']} | {baseline['peak_rss_mb']} |",
          "", f"full build / hand SQL = {result['ratio_full_build_vs_hand_sql']}x", "",
          f"row counts: {check}", "", result["notes"], ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
