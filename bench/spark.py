"""The Spark engine's cost beside DuckDB's: the same dbt project on the same raw data.

One generated data set (bench/transform.py's preparation: all days but the last loaded into
raw.*), exported as Parquet for Spark (orchestration.spark.raw_export), then per engine, each
in its own process: a full build (`dbt run --full-refresh`, every model but tag:after_segments)
and one new day (the last day loaded and exported, `dbt run` with the day's window: the
incremental path). Spark runs pyspark local[*] on this machine (dbt-spark `session`), so the
figure shows its fixed overhead (JVM start, per-statement scheduling), not a cluster's speed.
Results: bench/results/spark-<users>x<days>.{json,md}, with the load average next to them.

    .venv/bin/python bench/spark.py --users 10000 --days 60
    .venv/bin/python bench/spark.py --users 100000 --days 180
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from transform import DBT, TABLES, _dbt_common, _measure, _prepare  # noqa: E402

from orchestration.run_window import dbt_vars  # noqa: E402
from orchestration.settings import Settings  # noqa: E402
from orchestration.sources.load import load_partitions  # noqa: E402
from orchestration.spark.raw_export import export_raw  # noqa: E402
from orchestration.warehouse import dbt_env, duckdb_config  # noqa: E402


def _load_day(db: Path, work: Path, day, sources: Path | None) -> None:
    conn = duckdb.connect(str(db), config=duckdb_config())
    try:
        for table in TABLES:
            load_partitions(conn, table, [day], work / "landing", "demo", late_arrival_days=3)
        if sources is not None:
            export_raw(conn, sources, [day])
    finally:
        conn.close()


def _engine_run(engine: str, work: Path, dates: list, base_env: dict, record) -> None:
    """Full build of the history, then the new day incrementally, for one engine; each
    step's figure goes to record(step, figure) as soon as it is measured."""
    db, target = work / f"{engine}.duckdb", work / f"{engine}_target"
    shutil.copy(work / "history.duckdb", db)
    env = dict(base_env, SEGFLOW_DUCKDB_PATH=str(db), SEGFLOW_DBT_TARGET=engine)
    sources = None
    if engine == "spark":
        spark_dir = work / "spark"
        shutil.rmtree(spark_dir, ignore_errors=True)
        env |= {
            "SEGFLOW_SPARK_SOURCES_DIR": str(spark_dir / "sources"),
            "SEGFLOW_SPARK_WAREHOUSE": str(spark_dir / "warehouse"),
            "SEGFLOW_SPARK_METASTORE": str(spark_dir / "metastore_db"),
        }
        sources = spark_dir / "sources"
        with duckdb.connect(str(db)) as conn:
            export_raw(conn, sources)
    common = _dbt_common(target)
    subprocess.run([str(DBT), "parse", *common], env=env, check=True, stdout=subprocess.DEVNULL)
    record(
        "full_build",
        _attempt(
            [str(DBT), "run", "--full-refresh", "--exclude", "tag:after_segments", *common], env
        ),
    )
    _load_day(db, work, dates[-1], sources)
    # The day's window beside the settings' vars (one --vars: dbt keeps only the last one).
    window = {
        **dbt_vars(Settings.from_env()),
        "min_date": dates[-1].isoformat(),
        "max_date": (dates[-1] + timedelta(days=1)).isoformat(),
    }
    at = common.index("--vars")
    day_common = [*common[:at], "--vars", json.dumps(window), *common[at + 2 :]]
    record(
        "one_day", _attempt([str(DBT), "run", "--exclude", "tag:after_segments", *day_common], env)
    )


def _attempt(cmd: list[str], env: dict) -> dict:
    """_measure, or the failure's last lines (the report says which step failed, no figure)."""
    try:
        return _measure(cmd, env)
    except RuntimeError as exc:
        return {"error": str(exc)[-1500:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="segflow-bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    dates, info = _prepare(work, args.users, args.days, args.seed, args.reuse)
    base_env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", **dbt_env())
    load_before = os.getloadavg()
    results: dict = {}
    for engine in ("duckdb", "spark"):
        results[engine] = {}

        def record(step: str, figure: dict, engine: str = engine) -> None:
            # Written after each step: a run stopped during Spark's half keeps what it measured.
            results[engine][step] = figure
            _write_report(args, info, load_before, results)

        _engine_run(engine, work, dates, base_env, record)


def _write_report(args: argparse.Namespace, info: dict, load_before, results: dict) -> None:
    done = [e for e in ("duckdb", "spark") if e in results]
    ratios = {
        step: round(
            results["spark"][step]["wall_seconds"] / results["duckdb"][step]["wall_seconds"], 2
        )
        for step in ("full_build", "one_day")
        if len(done) == 2
        and all("error" not in results[e].get(step, {"error": "not run"}) for e in done)
    }
    report = {
        "users": args.users,
        "days": args.days,
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "prepare": info,
        "results": results,
        "spark_vs_duckdb_wall": ratios,
    }
    out = REPO / "bench" / "results" / f"spark-{args.users}x{args.days}"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Spark vs DuckDB, {args.users} users x {args.days} days",
        "",
        f"{os.cpu_count()} cores; load average before {report['loadavg_before']}, "
        f"after {report['loadavg_after']} (a shared machine: compare within this run only).",
        "",
        "| step | DuckDB wall s | Spark wall s | Spark / DuckDB | DuckDB peak MB | Spark peak MB |",
        "|---|---|---|---|---|---|",
    ]
    for step in ("full_build", "one_day"):
        cells = []
        for engine in ("duckdb", "spark"):
            figure = results.get(engine, {}).get(step)
            cells.append(
                "not run"
                if figure is None
                else "failed"
                if "error" in figure
                else (figure["wall_seconds"], figure["peak_rss_mb"])
            )
        walls = [c[0] if isinstance(c, tuple) else c for c in cells]
        peaks = [c[1] if isinstance(c, tuple) else "" for c in cells]
        lines.append(
            f"| {step} | {walls[0]} | {walls[1]} | {ratios.get(step, '')} | {peaks[0]} | {peaks[1]} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
