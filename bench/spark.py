"""The Spark engine's cost beside DuckDB's: the same dbt project on the same raw data.

One generated data set (bench/transform.py's preparation: all days but the last loaded into
raw.*), exported as Parquet for Spark (orchestration.spark.raw_export), then per engine, each
in its own process: a full build (`dbt run --full-refresh`, every model but tag:after_segments)
and one new day (the last day loaded and exported, `dbt run` with the day's window: the
incremental path). Spark runs pyspark local[*] on this machine (dbt-spark `session`), so the
figure shows its fixed overhead (JVM start, per-statement scheduling), not a cluster's speed.

Resumable: the five steps (prepare, duckdb_full, duckdb_day, spark_full, spark_day) are
recorded with their figures in bench/results/spark-<users>x<days>.json as each finishes. A
re-run with the same arguments and the same --work folder skips the recorded steps and goes
on from the first missing one (a step cut short is run again from its start: its inputs are
rebuilt, or, for a day step, the day's load and window are idempotent). Results:
bench/results/spark-<users>x<days>.{json,md}, with the load average at each step.

    .venv/bin/python bench/spark.py --users 10000 --days 60 --work /tmp/spark10k
    .venv/bin/python bench/spark.py --users 100000 --days 180 --work /work/bench-data/spark100k
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from spark_jvm import JvmCpu  # noqa: E402
from spark_report import write_report  # noqa: E402
from transform import DBT, TABLES, _dbt_common, _measure, _prepare  # noqa: E402

from orchestration.run_window import dbt_vars  # noqa: E402
from orchestration.settings import Settings  # noqa: E402
from orchestration.sources.load import load_partitions  # noqa: E402
from orchestration.spark.raw_export import export_raw  # noqa: E402
from orchestration.warehouse import dbt_env, duckdb_config  # noqa: E402

ENGINES = ("duckdb", "spark")
STEPS = ("prepare", *(f"{e}_{s}" for e in ENGINES for s in ("full", "day")))


class Run:
    """One benchmark run's work folder, environment and record of finished steps."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work.resolve()
        self.out = REPO / "bench" / "results" / f"spark-{args.users}x{args.days}"
        self.base_env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", **dbt_env())
        self.report = self._resumed() or {
            "users": args.users,
            "days": args.days,
            "seed": args.seed,
            "work": str(self.work),
            "cores": os.cpu_count(),
            "steps": {},
        }

    def _resumed(self) -> dict | None:
        """The recorded report of this same run (arguments and work folder), if any."""
        json_file = self.out.with_suffix(".json")
        if not json_file.exists() or not (self.work / "meta.json").exists():
            return None
        report = json.loads(json_file.read_text())
        start = json.loads((self.work / "meta.json").read_text()).get("start")
        recorded = report.get("steps", {}).get("prepare", {}).get("start")
        same = (report.get("work"), report.get("seed")) == (str(self.work), self.args.seed)
        return report if same and recorded == start else None

    def done(self, step: str) -> bool:
        return "error" not in self.report["steps"].get(step, {"error": "not run"})

    def record(self, step: str, figure: dict, load_before: tuple) -> None:
        """Write the step's figure now: a run stopped later keeps it."""
        figure = {
            **figure,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
        self.report["steps"][step] = figure
        write_report(self.out, self.report)

    def env(self, engine: str) -> dict:
        env = dict(self.base_env, SEGFLOW_DUCKDB_PATH=str(self.db(engine)))
        env["SEGFLOW_DBT_TARGET"] = engine
        if engine == "spark":
            spark_dir = self.work / "spark"
            env |= {
                "SEGFLOW_SPARK_SOURCES_DIR": str(spark_dir / "sources"),
                "SEGFLOW_SPARK_WAREHOUSE": str(spark_dir / "warehouse"),
                "SEGFLOW_SPARK_METASTORE": str(spark_dir / "metastore_db"),
            }
        return env

    def db(self, engine: str) -> Path:
        """DuckDB's warehouse; for Spark, the scratch file the new day is loaded into."""
        return self.work / f"{engine}.duckdb"

    def target(self, engine: str) -> Path:
        return self.work / f"{engine}_target"


def _full(run: Run, engine: str) -> dict:
    """The engine's inputs rebuilt from the history (a cut-short attempt leaves none), then
    the full build."""
    env = run.env(engine)
    if engine == "spark":  # Spark reads Parquet: the history exported, no DuckDB copy
        shutil.rmtree(run.work / "spark", ignore_errors=True)
        with duckdb.connect(str(run.work / "history.duckdb"), read_only=True) as conn:
            export_raw(conn, Path(env["SEGFLOW_SPARK_SOURCES_DIR"]))
    else:
        db = run.db(engine)
        Path(f"{db}.wal").unlink(missing_ok=True)
        shutil.copy(run.work / "history.duckdb", db)
    common = _dbt_common(run.target(engine))
    subprocess.run([str(DBT), "parse", *common], env=env, check=True, stdout=subprocess.DEVNULL)
    cmd = [str(DBT), "run", "--full-refresh", "--exclude", "tag:after_segments", *common]
    return _dbt_step(run, engine, cmd, env)


def _day(run: Run, engine: str, dates: list[date]) -> dict:
    """The last day loaded (and exported for Spark), then dbt run with the day's window. Both
    idempotent: a day step cut short is simply run again."""
    env = run.env(engine)
    day = dates[-1]
    db = run.db(engine)
    if engine == "spark":  # a scratch file for the day's rows, exported as Spark's Parquet
        db.unlink(missing_ok=True)
        Path(f"{db}.wal").unlink(missing_ok=True)
    conn = duckdb.connect(str(db), config=duckdb_config())
    try:
        for table in TABLES:
            load_partitions(conn, table, [day], run.work / "landing", "demo", late_arrival_days=3)
        if engine == "spark":
            export_raw(conn, Path(env["SEGFLOW_SPARK_SOURCES_DIR"]), [day])
    finally:
        conn.close()
    # The day's window beside the settings' vars (one --vars: dbt keeps only the last one).
    window = {
        **dbt_vars(Settings.from_env()),
        "min_date": day.isoformat(),
        "max_date": (day + timedelta(days=1)).isoformat(),
    }
    common = _dbt_common(run.target(engine))
    at = common.index("--vars")
    day_common = [*common[:at], "--vars", json.dumps(window), *common[at + 2 :]]
    return _dbt_step(
        run, engine, [str(DBT), "run", "--exclude", "tag:after_segments", *day_common], env
    )


def _dbt_step(run: Run, engine: str, cmd: list[str], env: dict) -> dict:
    """_measure plus dbt's own per-node seconds (run_results.json): how much of the wall is
    spent inside models, and which ones. A failure's last lines instead (no figure)."""
    results = run.target(engine) / "run_results.json"
    results.unlink(missing_ok=True)
    jvm = JvmCpu(str(run.work))
    jvm.start()
    try:
        figure = _measure(cmd, env)
    except RuntimeError as exc:
        return {"error": str(exc)[-1500:]}
    finally:
        jvm_cpu = jvm.stop()
    if engine == "spark":
        figure["jvm_cpu_seconds"] = jvm_cpu
        # The session's sizing as set for this step (profiles.yml's defaults otherwise).
        figure["spark_env"] = {k: v for k, v in os.environ.items() if k.startswith("SEGFLOW_SPARK")}
    nodes = {
        r["unique_id"].split(".")[-1]: round(r["execution_time"], 2)
        for r in json.loads(results.read_text())["results"]
    }
    slowest = sorted(nodes.items(), key=lambda item: -item[1])
    figure["models"] = len(nodes)
    figure["models_seconds"] = round(sum(nodes.values()), 1)
    figure["slowest_models"] = dict(slowest[:12])
    return figure


def _prepare_step(run: Run) -> list[date]:
    """Data generation and the history load (reused from the work folder once done)."""
    args = run.args
    load_before = os.getloadavg()
    if args.landing and not (run.work / "meta.json").exists():
        # Another run's generated files (read only): linked, with their first day.
        if not args.start:
            raise SystemExit("--landing needs --start (the first generated day)")
        (run.work / "landing").symlink_to(args.landing.resolve(), target_is_directory=True)
        meta = {"start": args.start, "landing": f"linked from {args.landing.resolve()}"}
        (run.work / "meta.json").write_text(json.dumps(meta))
    dates, info = _prepare(run.work, args.users, args.days, args.seed, reuse=True)
    if not run.done("prepare"):
        run.record("prepare", info, load_before)
    return dates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--work",
        "--workdir",
        type=Path,
        default=None,
        help="the run's folder (data, warehouses); keep it to resume an interrupted run",
    )
    parser.add_argument(
        "--landing",
        type=Path,
        default=None,
        help="use this landing folder (bench/transform.py's or the demo's, same users, days "
        "and seed) instead of generating one; with --start",
    )
    parser.add_argument("--start", default=None, help="the first day of --landing (YYYY-MM-DD)")
    parser.add_argument(
        "--keep", action="store_true", help="keep DuckDB's warehouse file after its day step"
    )
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="segflow-bench-spark-"))
    args.work.mkdir(parents=True, exist_ok=True)
    run = Run(args)
    dates = _prepare_step(run)
    for engine in ENGINES:
        if not run.done(f"{engine}_full"):
            run.report["steps"].pop(f"{engine}_day", None)  # a new full build: a new day too
            load_before = os.getloadavg()
            run.record(f"{engine}_full", _full(run, engine), load_before)
            if not run.done(f"{engine}_full"):
                continue  # the day needs the full build
        if run.done(f"{engine}_day"):
            print(f"{engine}: recorded in {run.out}.json, skipped", flush=True)
            continue
        load_before = os.getloadavg()
        run.record(f"{engine}_day", _day(run, engine, dates), load_before)
        if run.done(f"{engine}_day") and not args.keep:  # disk: 100k x 180 is ~6 GB of DuckDB
            run.db(engine).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
