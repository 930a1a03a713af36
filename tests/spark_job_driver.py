"""The Spark half of tests/test_spark_job.py, in one process (so one JVM, one Spark session and
one Derby boot for everything): `segflow run ARGS` exactly as a user runs it, then a
date-partitioned model's and an unpartitioned one's incremental path again over the run's last
days (dbt in this process on the same warm session), as a new day rewrites them. Writes <SEGFLOW_HOME>/partitions.json:
each partitioned table's partition folders -> data file names, before and after the rerun,
and how many trailing days the rerun rebuilds.

    python tests/spark_job_driver.py run --users 150 --days 45 --end 2026-09-15
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path

from orchestration.cli import main
from orchestration.dbt_parse import invoke
from orchestration.run_window import RunWindow, dbt_vars, dbt_vars_arg
from orchestration.settings import DBT_PROJECT_DIR, Settings
from orchestration.spark.tables import warehouse_dir

# A model dbt-spark stores partitioned by day (insert overwrite by date partition; the other,
# int_user_activity_daily, goes through the same macro and would double the rerun's time).
PARTITIONED = ("stg_events__events",)
# Not partitioned: its incremental run swaps in a new table (the kept rows plus the fresh ones).
SWAPPED = ("int_identity_map",)
RERUN_DAYS = 3


def partition_files(settings: Settings) -> dict[str, dict[str, list[str]]]:
    out = {}
    for table in PARTITIONED:
        folder = warehouse_dir(settings) / table
        out[table] = {
            p.name: sorted(f.name for f in p.glob("*.parquet"))
            for p in sorted(folder.iterdir())
            if p.is_dir() and "=" in p.name
        }
    return out


def rerun_last_days(settings: Settings, last: date) -> None:
    window = RunWindow(last - timedelta(days=RERUN_DAYS - 1), last)
    vars_arg = dbt_vars_arg(settings, window)
    selection = ["--select", *PARTITIONED, *SWAPPED]
    with invoke("run", DBT_PROJECT_DIR, "spark", vars_arg, selection) as run:
        if not run.result.success:
            raise SystemExit(f"incremental rerun failed: {run.result.exception}")


def drive(argv: list[str]) -> int:
    code = main(argv)
    if code:
        return code
    settings = Settings.from_env()
    before = partition_files(settings)
    rerun_last_days(settings, date.fromisoformat(argv[argv.index("--end") + 1]))
    after = partition_files(settings)
    # The incremental models rebuild from min_date - late_arrival_days (macro reprocess_from).
    rebuilt = RERUN_DAYS + int(dbt_vars(settings)["late_arrival_days"])
    report = {"before": before, "after": after, "rebuilt_days": rebuilt}
    (Path(settings.home) / "partitions.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(drive(sys.argv[1:]))
