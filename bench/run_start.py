"""How long a long range waits before its first step: launch `segflow_full_job` over N daily
partitions and time from `execute_in_process` to the first STEP_START in the event log.

Two modes: Dagster's default (one ASSET_MATERIALIZATION_PLANNED event per asset and day) and
the one segflow sets (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS: one per asset with the
range). Each launch runs in its own process, killed once its first step has started.

    python bench/run_start.py [--days 730] [--default-days 180]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CHILD = """
import sys, time
from datetime import date
from orchestration.cli import prepare
from orchestration.launcher import run_job
from orchestration.settings import Settings
prepare(Settings.from_env())
start, end, run_id = date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2]), sys.argv[3]
from orchestration.definitions import defs
defs().resolve_job_def("segflow_full_job")
print("LAUNCH", time.time(), flush=True)
run_job(start, end, "segflow_full_job", run_id=run_id)
"""


def time_to_first_step(days: int, subset: bool, timeout: float = 3600.0) -> float:
    import uuid

    import dagster as dg

    end = date(2026, 11, 29)
    start = end - timedelta(days=days - 1)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "dagster_home").mkdir()
        env = {
            **os.environ,
            "SEGFLOW_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster_home"),
            "SEGFLOW_PARTITIONS_START": start.isoformat(),
            "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true" if subset else "false",
        }
        run_id = str(uuid.uuid4())
        # the instance (SQLite storage) exists before the child starts: no creation race
        shutil.copy(ROOT / "orchestration" / "dagster.yaml", home / "dagster_home")
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        instance = dg.DagsterInstance.get()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, start.isoformat(), end.isoformat(), run_id],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            line = child.stdout.readline()
            launched = float(line.split()[1])
            deadline = time.time() + timeout
            while time.time() < deadline:
                records = instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.STEP_START, limit=1
                ).records
                if records:
                    return records[0].event_log_entry.timestamp - launched
                time.sleep(0.5)
            raise TimeoutError(f"no step started within {timeout}s")
        finally:
            child.kill()
            child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=730, help="range with segflow's setting")
    parser.add_argument("--default-days", type=int, default=180, help="range, Dagster default")
    parser.add_argument("--repeat", type=int, default=3, help="launches per mode (median)")
    args = parser.parse_args()
    results = {}
    for label, days, subset, repeat in (
        ("segflow (one planned event per asset)", args.days, True, args.repeat),
        ("dagster default (one per asset and day)", args.default_days, False, 1),
    ):
        seconds = [time_to_first_step(days, subset) for _ in range(repeat)]
        results[label] = {
            "days": days,
            "launches": repeat,
            "median_seconds": statistics.median(seconds),
            "seconds": [round(s, 2) for s in seconds],
        }
        print(
            f"{label}: {days} days -> first step after {statistics.median(seconds):.1f}s "
            f"(median of {repeat})",
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "run_start.json"
    out.write_text(json.dumps({"machine": "2 cores, shared", "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
