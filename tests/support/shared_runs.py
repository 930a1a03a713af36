"""Expensive runs that several test modules read, built once per session: the modules that
read a run (READERS) go to the same xdist worker (tests/conftest.py's scheduler), and a module
using the fixture without being listed stops the collection. Tests only read what a shared run
left behind; a test that changes state builds its own."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SEGFLOW = Path(sys.executable).parent / "segflow"
# A small demo whose window starts on a Sunday (2026-08-02), as ../shared/scripts/fresh-check.sh
# runs it: short enough that some models are skipped for too little history.
SMALL_RUN_ARGS = ("run", "--users", "150", "--days", "45", "--end", "2026-09-15")
# Session fixture -> the test modules that read it (one xdist worker runs them all).
# A reader's test may wait for the run: its pytest timeout is the run's own plus a margin.
READERS = {"small_cli_run": ("test_cli_run.py", "test_report_e2e.py", "test_spark_job.py")}
RUN_TIMEOUT = 1500  # seconds; a loaded 2-core machine has taken over 15 minutes


@dataclass(frozen=True)
class CliRun:
    proc: subprocess.CompletedProcess
    home: Path  # its SEGFLOW_HOME (warehouse, logs, report, MLflow store, DAGSTER_HOME)


@pytest.fixture(scope="session")
def small_cli_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """`segflow run` as a new user meets it, in a subprocess with its own SEGFLOW_HOME."""
    home = tmp_path_factory.mktemp("small_cli_run")
    env = {**os.environ, "SEGFLOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
    env.pop("SEGFLOW_DUCKDB_PATH", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [str(SEGFLOW), *SMALL_RUN_ARGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT,
    )
    return CliRun(proc, home)
