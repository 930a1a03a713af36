"""Benchmark of the dbt transformation layer against a plain-DuckDB script of the same tables.

One raw file, three measured steps, each in its own process, back to back:
  1. full build: `dbt run --full-refresh` of every model except tag:after_segments, on the
     history (all generated days but the last);
  2. one new day the daily job's way: load the last day into raw.* (segflow's loader), write the
     run window, then the daily job's dbt as `segflow run` runs it by default: one partial parse
     in the process and the `dbt build` steps in process (orchestration.dbt_selection.daily_steps:
     staging views + incremental models with the day's window, then the downstream marts; models
     and tests), with dbt's model and test seconds per step. The goal (<= 0.05 of the full
     build) is for its dbt: the process's CPU less the raw load's, since the full build's
     figure has no load in it either; the ratio with the load is reported beside it;
  3. plain DuckDB: a hand-written script (bench/transform_plain.py) computing the same core
     tables on a copy of the same history: de-duplicated events, identity map, stitched events,
     sessions, daily activity and fct_user_features' 87 columns per user per day (compared with
     dbt's row for row; the report says how many differ).
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
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import duckdb
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transform_plain import features_mismatches, plain_script  # noqa: E402
from transform_steps import (  # noqa: E402, F401  (bench/spark.py imports these from here)
    DBT,
    NEW_DAY,
    REPO,
    TABLES,
    _count,
    _dbt_common,
    _measure,
    _prepare,
)

from orchestration.dbt_selection import daily_steps, split_models  # noqa: E402
from orchestration.run_window import dbt_vars  # noqa: E402
from orchestration.settings import Settings  # noqa: E402
from orchestration.warehouse import dbt_env, duckdb_config  # noqa: E402

# day_dbt_vs_full_cpu: the daily job's dbt for a new day (its process less the raw load, which
# the full build's figure does not contain either: the history is loaded before it) / full build.
GOALS = {"full_vs_plain_cpu": 1.5, "day_dbt_vs_full_cpu": 0.05, "peak_rss_mb": 4096}


def _all_dbt_vars(settings: Settings) -> dict:
    """The vars dbt sees: dbt_project.yml's own plus segflow's settings."""
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text())["vars"]
    return {**project, **dbt_vars(settings)}


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
    parser.add_argument(
        "--full-build-state",
        type=Path,
        default=None,
        help="for iterating on the new day: the database right after the full build is kept "
        "there; when it exists, only the new day is measured (on a copy), against the full "
        "build's CPU s in bench/results, and nothing is written to bench/results",
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
    state = args.full_build_state
    shutil.copy(state if state and state.exists() else work / "history.duckdb", db)
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
    if state and state.exists():
        return _new_day_only(args, new_day, db, target, env)
    full = _measure(
        [str(DBT), "run", "--full-refresh", "--exclude", "tag:after_segments", *common], env
    )
    if state:
        shutil.copy(db, state)
    shutil.copy(work / "history.duckdb", plain_db)
    day = _new_day(new_day, db, target, env)
    steps = day.pop("steps")
    # 3. Plain DuckDB on the same history.
    script = work / "plain.sql"
    script.write_text(plain_script(_all_dbt_vars(settings)))
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
        # Equal work: the plain features equal dbt's (days the new day cannot have changed).
        settled = new_day - timedelta(days=settings.late_arrival_days)
        check["features_vs_plain"] = features_mismatches(conn, "plain", settled.isoformat())
    finally:
        conn.close()

    _report(args, new_day, info, config, full, day, plain, check, steps)


def _new_day(new_day: date, db: Path, target: Path, env: dict) -> dict:
    """2. One new day, the daily job's way. Not measured: the project's own partial parse for
    this warehouse, as yesterday's run leaves it."""
    work = db.parent
    selection = split_models(target / "manifest.json")
    steps = daily_steps(selection)
    seed_parse = (
        "from orchestration.cli_run import parse_manifest as p; from orchestration.settings"
    )
    seed_parse += " import Settings as s; p(s.from_env())"
    subprocess.run([sys.executable, "-c", seed_parse], env=env, check=True, cwd=REPO)
    step_seconds = work / "new_day_seconds.json"
    code = NEW_DAY.format(
        repo=str(REPO),
        day=new_day.isoformat(),
        db=str(db),
        tables=TABLES,
        landing=str(work / "landing"),
        steps=json.dumps(steps),
        out=str(step_seconds),
    )
    day = _measure([sys.executable, "-c", code], env)
    parts = json.loads(step_seconds.read_text())
    day["seconds"] = {k: round(v, 2) for k, v in parts["seconds"].items()}
    day["cpu_parts"] = {k: round(v, 2) for k, v in parts["cpu_seconds"].items()}
    day["dbt_cpu_seconds"] = round(day["cpu_seconds"] - day["cpu_parts"]["load"], 2)
    day["slowest_nodes"] = {k: round(v, 2) for k, v in parts["slowest_nodes"].items()}
    day["slowest_nodes_wall"] = {k: round(v, 2) for k, v in parts["slowest_nodes_wall"].items()}
    day["steps"] = steps
    return day


def _new_day_only(
    args: argparse.Namespace, new_day: date, db: Path, target: Path, env: dict
) -> None:
    """The new day on a copy of the kept full-build state, against the last reported full
    build (same users and days): for iterating on the daily job's dbt."""
    day = _new_day(new_day, db, target, env)
    last = REPO / "bench" / "results" / f"transform-{args.users}x{args.days}.json"
    full_cpu = json.loads(last.read_text())["full_build"]["cpu_seconds"]
    print(json.dumps({k: v for k, v in day.items() if k != "steps"}, indent=2))
    print(
        f"new day's dbt {day['dbt_cpu_seconds']} CPU s / full build {full_cpu} CPU s "
        f"({last.name}) = {day['dbt_cpu_seconds'] / full_cpu:.3f} (goal <= "
        f"{GOALS['day_dbt_vs_full_cpu']}); with the load {day['cpu_seconds'] / full_cpu:.3f}; "
        f"load {os.getloadavg()[0]:.2f}"
    )


def _report(
    args: argparse.Namespace,
    new_day: date,
    info: dict,
    config: dict,
    full: dict,
    day: dict,
    plain: dict,
    check: dict,
    steps: list,
) -> None:
    """Ratios against the goals; bench/results/transform-<users>x<days>.{json,md}."""
    ratios = {
        "full_vs_plain_cpu": round(full["cpu_seconds"] / max(plain["cpu_seconds"], 0.01), 2),
        "full_vs_plain_wall": round(full["wall_seconds"] / max(plain["wall_seconds"], 0.01), 2),
        "day_dbt_vs_full_cpu": round(day["dbt_cpu_seconds"] / max(full["cpu_seconds"], 0.01), 3),
        "day_vs_full_cpu": round(day["cpu_seconds"] / max(full["cpu_seconds"], 0.01), 3),
        "day_vs_full_wall": round(day["wall_seconds"] / max(full["wall_seconds"], 0.01), 3),
    }
    peak = max(full["peak_rss_mb"], day["peak_rss_mb"])
    met = {
        "full_vs_plain_cpu": ratios["full_vs_plain_cpu"] <= GOALS["full_vs_plain_cpu"],
        "day_dbt_vs_full_cpu": ratios["day_dbt_vs_full_cpu"] <= GOALS["day_dbt_vs_full_cpu"],
        "peak_rss_mb": peak <= GOALS["peak_rss_mb"],
        "plain_equal_work": not any(check["features_vs_plain"].values()),
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
        "the last day + the daily job's dbt the way `segflow run` does it by default: one "
        "partial parse in the process, then its `dbt build` steps (models and tests) in "
        "process on copies of that parse (orchestration/dbt_parse.py); "
        "plain = bench/transform_plain.py: the staging and intermediate tables and all 87 "
        "fct_user_features columns (checked row for row against dbt's: features_vs_plain), "
        "not dim_users, the retention/funnel marts or the training sets, which the dbt full "
        "build also writes. dbt figures include dbt's start-up.",
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
        "| new day, daily job's way (load + parse + dbt builds with tests) | "
        f"{day['wall_seconds']} | {day['cpu_seconds']} | {day['peak_rss_mb']} |",
        f"| plain DuckDB script (history) | {plain['wall_seconds']} | {plain['cpu_seconds']} | "
        f"{plain['peak_rss_mb']} |",
        "",
        "| ratio | value | goal | met |",
        "|---|---:|---:|---|",
        f"| full build / plain (CPU s) | {ratios['full_vs_plain_cpu']} | <= 1.5 | "
        f"{met['full_vs_plain_cpu']} |",
        f"| full build / plain (wall s) | {ratios['full_vs_plain_wall']} | | |",
        f"| new day's dbt (all but the load: {day['dbt_cpu_seconds']} CPU s) / full build (CPU s) "
        f"| {ratios['day_dbt_vs_full_cpu']} | <= 0.05 | {met['day_dbt_vs_full_cpu']} |",
        f"| new day incl. the raw load / full build (CPU s) | {ratios['day_vs_full_cpu']} | | |",
        f"| new day / full build (wall s) | {ratios['day_vs_full_wall']} | | |",
        f"| peak RSS, full build and new day (MB) | {peak} | <= 4096 | {met['peak_rss_mb']} |",
        f"| plain features = dbt features (rows differing) | {check['features_vs_plain']} | 0 | "
        f"{met['plain_equal_work']} |",
        "",
        f"new day's parts, wall s: {day['seconds']}; CPU s of the process: {day['cpu_parts']} "
        "(step0 = staging + incremental models, step1 = downstream marts; *_models / *_tests "
        "= dbt's nodes; a step's rest is dbt's own start-up, hooks and artifacts)",
        "",
        f"slowest nodes (CPU s): {day['slowest_nodes']}; their wall s: {day['slowest_nodes_wall']}",
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
