"""Benchmark of the dbt transformation layer against a plain-DuckDB script of the same tables.

One raw file, three measured steps, each in its own process, back to back:
  1. full build: `dbt run --full-refresh` of every model except tag:after_segments, on the
     history (all generated days but the last);
  2. one new day the daily job's way: load the last day into raw.* (segflow's loader), then the
     daily job's dbt invocations with their tests (orchestration.dbt_selection.daily_steps:
     upstream build, incremental build with the day's window, downstream build);
  3. plain DuckDB: a hand-written script (BASELINE_SQL) computing the same core tables on a copy
     of the same history: de-duplicated events, identity map, stitched events, sessions, daily
     activity and one point-in-time feature row per user per day.
For each: wall seconds, CPU seconds (user + system of the process and its children) and peak RSS
of the process tree (sampled every 50 ms). DuckDB gets the same memory_limit / threads in all
three (SEGFLOW_DUCKDB_MEMORY_LIMIT / SEGFLOW_DUCKDB_THREADS, defaults from orchestration.settings).
Results: bench/results/transform-<users>x<days>.{json,md}.

    .venv/bin/python bench/transform.py --users 100000 --days 180     # the reference run
    .venv/bin/python bench/transform.py --users 10000 --days 60       # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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

from orchestration.dbt_selection import daily_steps, split_models  # noqa: E402
from orchestration.run_window import dbt_vars_arg  # noqa: E402
from orchestration.settings import Settings  # noqa: E402
from orchestration.warehouse import dbt_env, duckdb_config  # noqa: E402

DBT = Path(sys.executable).parent / "dbt"
TABLES = ("crm_contacts", "events", "billing_invoices")
GOALS = {"full_vs_plain_cpu": 1.5, "day_vs_full_cpu": 0.05, "peak_rss_mb": 4096}

# The plain-DuckDB way: hash aggregates where possible, one sort for sessions (lag/lead and
# running counts in one window pass, then the boundary rows), one for active minutes, and a
# dense user x day grid with rolling frames for the features. $core = the core-feature events.
BASELINE_SQL = """
create or replace table plain_events as
with dup as (select hash(message_id) as h from raw.events where message_id is not null
             group by 1 having count(*) > 1)
select message_id, lower(type) as event_type, event as event_name,
       nullif(trim(user_id), '') as user_id, nullif(trim(anonymous_id), '') as anonymous_id,
       "timestamp" as event_at, _partition_date as partition_date
from raw.events e where message_id is not null and hash(message_id) not in (select h from dup)
union all
select * from (
  select message_id, lower(type), event, nullif(trim(user_id), ''), nullif(trim(anonymous_id), ''),
         "timestamp", _partition_date
  from raw.events e where message_id is not null and hash(message_id) in (select h from dup)
  qualify row_number() over (partition by message_id order by received_at, _partition_date,
                             _source_file, _source_line, "timestamp") = 1);

create or replace table plain_identity as
select anonymous_id, arg_min(user_id, (event_at, message_id)) as user_id,
       min(event_at) as first_identified_at
from plain_events where anonymous_id is not null and user_id is not null group by 1;

create or replace table plain_stitched as
select e.message_id, coalesce(e.user_id, i.user_id) as user_id, e.event_type, e.event_name,
       e.event_at
from plain_events e left join plain_identity i
  on e.user_id is null and e.anonymous_id = i.anonymous_id
where coalesce(e.user_id, i.user_id) is not null;

create or replace table plain_event_gaps as
select user_id, message_id, event_at, event_at::date as d, event_type, event_name,
       lag(event_at) over w as prev_at, lead(event_at) over w as next_at,
       count(*) over (w rows unbounded preceding) as n_so_far
from plain_stitched window w as (partition by user_id order by event_at, message_id);

create or replace table plain_sessions as
with b as (
  select *, prev_at is null or date_diff('second', prev_at, event_at) > 1800 as is_start,
            next_at is null or date_diff('second', event_at, next_at) > 1800 as is_end
  from plain_event_gaps
  where prev_at is null or next_at is null or date_diff('second', prev_at, event_at) > 1800
     or date_diff('second', event_at, next_at) > 1800),
p as (
  select user_id, is_start, event_at as session_start, n_so_far - 1 as n_before,
         case when is_end then event_at else lead(event_at) over nb end as session_end,
         case when is_end then n_so_far else lead(n_so_far) over nb end as n_end
  from b window nb as (partition by user_id order by event_at, message_id))
select user_id, session_start, session_end, session_start::date as session_date,
       date_diff('second', session_start, session_end) / 60.0 as duration_minutes,
       n_end - n_before as event_count
from p where is_start;

create or replace table plain_daily as
with e as (
  select user_id, d as activity_date, count(*) as events,
         count(*) filter (where event_type = 'page') as page_views,
         count(*) filter (where event_type = 'track' and event_name in $core) as core_feature_events,
         sum(case when date_diff('second', prev_at, event_at) <= 1800
                  then date_diff('second', prev_at, event_at) / 60.0 else 0 end) as active_minutes
  from plain_event_gaps group by 1, 2),
s as (select user_id, session_date as activity_date, count(*) as sessions_started
      from plain_sessions group by 1, 2)
select e.*, coalesce(s.sessions_started, 0) as sessions_started
from e left join s using (user_id, activity_date);

create or replace table plain_features as
with bounds as (
  select user_id, min(activity_date) as first_date from plain_daily group by 1),
data_end as (select max(activity_date) as last_date from plain_daily),
grid as (
  select b.user_id, unnest(generate_series(b.first_date, d.last_date, interval 1 day))::date
         as snapshot_date
  from bounds b, data_end d),
dense as (
  select g.user_id, g.snapshot_date, (a.user_id is not null)::int as active,
         coalesce(a.events, 0) as events, coalesce(a.sessions_started, 0) as sessions,
         coalesce(a.active_minutes, 0) as active_minutes,
         coalesce(a.core_feature_events, 0) as core_feature_events
  from grid g left join plain_daily a
    on a.user_id = g.user_id and a.activity_date = g.snapshot_date)
select user_id, snapshot_date,
       sum(active) over w7 as active_days_7d, sum(active) over w28 as active_days_28d,
       sum(events) over w7 as events_7d, sum(events) over w28 as events_28d,
       sum(sessions) over w28 as sessions_28d,
       sum(active_minutes) over w28 / nullif(sum(sessions) over w28, 0) as avg_session_minutes_28d,
       sum(core_feature_events) over w28 as core_feature_events_28d,
       sum(events) over wall as events_lifetime,
       max(case when active = 1 then snapshot_date end) over wall as last_active_date
from dense
window w7 as (partition by user_id order by snapshot_date rows 6 preceding),
       w28 as (partition by user_id order by snapshot_date rows 27 preceding),
       wall as (partition by user_id order by snapshot_date rows unbounded preceding);
"""

# Step 2's process: load the new day the way the ingest asset does, then the daily job's dbt.
NEW_DAY = """
import json, os, shutil, subprocess, sys
from datetime import date
from pathlib import Path
sys.path.insert(0, {repo!r})
from orchestration.sources.load import load_partitions
from orchestration.run_window import RunWindow, window_sql
from orchestration.warehouse import connect
day = date.fromisoformat({day!r})
with connect(Path({db!r})) as conn:
    for table in {tables!r}:
        load_partitions(conn, table, [day], Path({landing!r}), "demo", late_arrival_days=3)
    conn.execute(window_sql(RunWindow(day, day)))  # the window, as the Dagster step writes it
# Like dagster-dbt: every invocation gets a fresh target dir seeded with the project's
# partial_parse.msgpack (parsed with the same settings vars: no re-parse).
for i, args in enumerate(json.loads({steps!r})):
    target = Path({target!r}) / f"step{{i}}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path({target!r}) / "partial_parse.msgpack", target / "partial_parse.msgpack")
    common = [*{common!r}, "--target-path", str(target), "--log-path", str(target)]
    subprocess.run([{dbt!r}, *args, *common], check=True, stdout=subprocess.DEVNULL)
"""


def _measure(cmd: list[str], env: dict[str, str]) -> dict:
    """Run cmd; wall seconds, CPU seconds of the process tree, peak RSS of the tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO
        )
        parent = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                rss = parent.memory_info().rss + sum(
                    c.memory_info().rss for c in parent.children(recursive=True)
                )
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        log.seek(0)
        out = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{out[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def _dbt_common(target: Path) -> list[str]:
    return [
        "--project-dir",
        str(REPO / "dbt_project"),
        "--profiles-dir",
        str(REPO / "dbt_project"),
        "--target-path",
        str(target),
        "--log-path",
        str(target),
        *dbt_vars_arg(Settings.from_env()),
    ]


def _count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def _prepare(work: Path, users: int, days: int, seed: int, reuse: bool) -> tuple[list[date], dict]:
    """Generate the landing data (unless reused) and load all days but the last into
    history.duckdb (raw.* only)."""
    from demo import saas as demo
    from orchestration.sources.load import load_partitions

    meta_file = work / "meta.json"
    info: dict = {}
    if reuse and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        start = date.fromisoformat(meta["start"])
        info = meta
    else:
        start = datetime.now(UTC).date() - timedelta(days=days + 1)
        t0 = time.perf_counter()
        demo.generate(work / "landing", work / "truth", users, days, seed, start)
        info = {"start": start.isoformat(), "generate_seconds": round(time.perf_counter() - t0, 1)}
        (work / "history.duckdb").unlink(missing_ok=True)
    dates = [start + timedelta(days=i) for i in range(days)]
    history = work / "history.duckdb"
    if not history.exists():
        t0 = time.perf_counter()
        conn = duckdb.connect(str(history), config=duckdb_config())
        try:
            for table in TABLES:
                load_partitions(
                    conn, table, dates[:-1], work / "landing", "demo", late_arrival_days=3
                )
        finally:
            conn.close()
        info["load_history_seconds"] = round(time.perf_counter() - t0, 1)
    meta_file.write_text(json.dumps(info))
    return dates, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where data and the DuckDB files go (default: a temp dir)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse generated data and the loaded history in --workdir",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="segflow-bench-transform-"))
    work.mkdir(parents=True, exist_ok=True)
    dates, info = _prepare(work, args.users, args.days, args.seed, args.reuse)
    new_day = dates[-1]

    db, plain_db, target = work / "warehouse.duckdb", work / "plain.duckdb", work / "dbt_target"
    for f in (db, plain_db):
        f.unlink(missing_ok=True)
        Path(f"{f}.wal").unlink(missing_ok=True)
    shutil.copy(work / "history.duckdb", db)
    shutil.copy(work / "history.duckdb", plain_db)
    settings = Settings.from_env()
    env = dict(
        os.environ,
        SEGFLOW_DUCKDB_PATH=str(db),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DBT_INDIRECT_SELECTION="buildable",
        **dbt_env(settings),
    )
    common = _dbt_common(target)
    # Parse once (not measured): every measured dbt call then starts from a parsed manifest,
    # as the Dagster code location does.
    subprocess.run([str(DBT), "parse", *common], env=env, check=True, stdout=subprocess.DEVNULL)

    # 1. Full build of the history.
    full = _measure(
        [str(DBT), "run", "--full-refresh", "--exclude", "tag:after_segments", *common], env
    )
    # 2. One new day, the daily job's way.
    selection = split_models(target / "manifest.json")
    steps = daily_steps(selection)
    project_args = [*_dbt_common(target)[:4], *dbt_vars_arg(settings)]  # no target/log path
    code = NEW_DAY.format(
        repo=str(REPO),
        day=new_day.isoformat(),
        db=str(db),
        tables=TABLES,
        landing=str(work / "landing"),
        steps=json.dumps(steps),
        dbt=str(DBT),
        common=project_args,
        target=str(target),
    )
    day = _measure([sys.executable, "-c", code], env)
    # 3. Plain DuckDB on the same history.
    from contracts import tracking_plan

    core = "(" + ", ".join(f"'{e}'" for e in tracking_plan.load().core_features) + ")"
    script = work / "plain.sql"
    script.write_text(BASELINE_SQL.replace("$core", core))
    config = duckdb_config(settings)
    runner = (
        "import duckdb,sys,json; c=duckdb.connect(sys.argv[1], config=json.loads(sys.argv[3])); "
        "c.execute(open(sys.argv[2]).read()); c.close()"
    )
    plain = _measure(
        [sys.executable, "-c", runner, str(plain_db), str(script), json.dumps(config)], env
    )

    conn = duckdb.connect(str(db), read_only=True)
    try:
        conn.execute(f"attach '{plain_db}' as plain (read_only)")
        history_end = dates[-2]
        check = {
            "raw_events": _count(conn, "raw.events"),
            "events_dbt": _count(conn, "main.stg_events__events"),
            "identity_dbt": _count(conn, "main.int_identity_map"),
            "identity_plain": _count(conn, "plain.main.plain_identity"),
            "sessions_dbt_history": conn.execute(
                "select count(*) from main.int_sessions where session_date <= ?", [history_end]
            ).fetchone()[0],
            "sessions_plain": _count(conn, "plain.main.plain_sessions"),
            "daily_dbt_history": conn.execute(
                "select count(*) from main.int_user_activity_daily where activity_date <= ?",
                [history_end],
            ).fetchone()[0],
            "daily_plain": _count(conn, "plain.main.plain_daily"),
            "feature_rows_dbt": _count(conn, "main.fct_user_features"),
            "feature_rows_plain": _count(conn, "plain.main.plain_features"),
        }
    finally:
        conn.close()

    ratios = {
        "full_vs_plain_cpu": round(full["cpu_seconds"] / max(plain["cpu_seconds"], 0.01), 2),
        "full_vs_plain_wall": round(full["wall_seconds"] / max(plain["wall_seconds"], 0.01), 2),
        "day_vs_full_cpu": round(day["cpu_seconds"] / max(full["cpu_seconds"], 0.01), 3),
        "day_vs_full_wall": round(day["wall_seconds"] / max(full["wall_seconds"], 0.01), 3),
    }
    peak = max(full["peak_rss_mb"], day["peak_rss_mb"])
    met = {
        "full_vs_plain_cpu": ratios["full_vs_plain_cpu"] <= GOALS["full_vs_plain_cpu"],
        "day_vs_full_cpu": ratios["day_vs_full_cpu"] <= GOALS["day_vs_full_cpu"],
        "peak_rss_mb": peak <= GOALS["peak_rss_mb"],
    }
    result = {
        "users": args.users,
        "days": args.days,
        "seed": args.seed,
        "new_day": str(new_day),
        "date": str(date.today()),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "duckdb": config,
        "prepare": info,
        "full_build": full,
        "new_day_daily_job": day,
        "plain_duckdb": plain,
        "ratios": ratios,
        "goals": GOALS,
        "goals_met": met,
        "row_counts": check,
        "daily_job_steps": steps,
        "notes": "One run on a shared machine (other processes were running). Full build = "
        "`dbt run --full-refresh` of all models but tag:after_segments (features for "
        "every snapshot day, marts, training sets) on the history; new day = load of "
        "the last day + the daily job's three `dbt build` calls (models and tests), each "
        "in a fresh target dir seeded with the parsed project as dagster-dbt does; "
        "plain = BASELINE_SQL in bench/transform.py (core tables and a subset of the "
        "feature columns). dbt figures include dbt's start-up.",
    }
    out = REPO / "bench" / "results" / f"transform-{args.users}x{args.days}"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# transform benchmark: {args.users:,} users x {args.days} days (seed {args.seed})",
        "",
        f"raw events: {check['raw_events']:,} (history of {args.days - 1} days + new day "
        f"{new_day}); DuckDB memory_limit {config['memory_limit']}, threads {config['threads']}; "
        f"{os.cpu_count()} CPUs, shared machine (1-min load at the end "
        f"{result['load_average_at_end'][0]}).",
        "",
        "| step | wall s | CPU s | peak RSS MB |",
        "|---|---:|---:|---:|",
        f"| dbt full build (history) | {full['wall_seconds']} | {full['cpu_seconds']} | "
        f"{full['peak_rss_mb']} |",
        f"| new day, daily job's way (load + 3 dbt builds with tests) | {day['wall_seconds']} | "
        f"{day['cpu_seconds']} | {day['peak_rss_mb']} |",
        f"| plain DuckDB script (history) | {plain['wall_seconds']} | {plain['cpu_seconds']} | "
        f"{plain['peak_rss_mb']} |",
        "",
        "| ratio | value | goal | met |",
        "|---|---:|---:|---|",
        f"| full build / plain (CPU s) | {ratios['full_vs_plain_cpu']} | <= 1.5 | "
        f"{met['full_vs_plain_cpu']} |",
        f"| full build / plain (wall s) | {ratios['full_vs_plain_wall']} | | |",
        f"| new day / full build (CPU s) | {ratios['day_vs_full_cpu']} | <= 0.05 | "
        f"{met['day_vs_full_cpu']} |",
        f"| new day / full build (wall s) | {ratios['day_vs_full_wall']} | | |",
        f"| peak RSS, full build and new day (MB) | {peak} | <= 4096 | {met['peak_rss_mb']} |",
        "",
        f"row counts: {check}",
        "",
        result["notes"],
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
