"""A run whose process is SIGKILLed while it holds the `duckdb` pool must not block the next run:
the stale-run sensor (and `segflow run`'s own check) marks it failed and frees its slot.

Real Dagster instance (sqlite storage, the project's dagster.yaml pools) and real processes:
a tiny job with one op in the `duckdb` pool runs in a subprocess and is killed with SIGKILL."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration import launcher
from orchestration.defs import stale_runs
from orchestration.settings import PROJECT_ROOT, Settings

SCRIPT = """
import pathlib, sys, time
import dagster as dg

marker, hold = pathlib.Path(sys.argv[1]), float(sys.argv[2])

@dg.op(pool="duckdb")
def hold_pool():
    marker.write_text("holding")
    time.sleep(hold)

@dg.job(executor_def=dg.in_process_executor)
def pool_job():
    hold_pool()

ok = pool_job.execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=False).success
sys.exit(0 if ok else 1)
"""


@pytest.fixture
def instance_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (tmp_path / "job.py").write_text(SCRIPT)
    with dg.DagsterInstance.get() as instance:
        yield tmp_path, instance


def start_run(tmp_path: Path, name: str, hold: float) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / f"{name}.holding"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "job.py"), str(marker), str(hold)])
    return proc, marker


def wait_for(path: Path, seconds: float) -> float:
    """Seconds until `path` exists; fails after `seconds`."""
    t0 = time.monotonic()
    while not path.exists():
        assert time.monotonic() - t0 < seconds, f"{path.name} did not appear in {seconds}s"
        time.sleep(0.2)
    return time.monotonic() - t0


def killed_run_holding_pool(tmp_path: Path, instance: dg.DagsterInstance) -> str:
    """Start a run that holds the pool, SIGKILL it; return its run id (still STARTED)."""
    proc, marker = start_run(tmp_path, "first", hold=600)
    wait_for(marker, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    (record,) = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    run_id = record.dagster_run.run_id
    assert stale_runs.pool_run_ids(instance) == {run_id}  # the defect: a dead run holds it
    assert stale_runs.run_pid(instance, run_id) == proc.pid
    return run_id


def test_sigkilled_run_no_longer_blocks_the_next_run(instance_home) -> None:
    tmp_path, instance = instance_home
    dead = killed_run_holding_pool(tmp_path, instance)

    second, marker = start_run(tmp_path, "second", hold=0)
    time.sleep(4)
    assert not marker.exists(), "the second run should wait for the pool the dead run holds"

    # One tick of the sensor, as the daemon runs it every SEGFLOW_STALE_RUN_CHECK_SECONDS.
    result = stale_runs.segflow_stale_run_sensor(dg.build_sensor_context(instance=instance))
    assert dead in str(result.skip_message) and "freed 1" in str(result.skip_message)
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert dead not in stale_runs.pool_run_ids(instance)

    interval = Settings.from_env().stale_run_check_seconds
    started_after = wait_for(marker, interval)
    assert second.wait(timeout=60) == 0
    assert started_after < interval
    # Nothing left to reap: the check is idempotent.
    assert stale_runs.reap_stale_runs(instance) == []


def test_segflow_run_names_a_living_holder_and_reaps_a_dead_one(instance_home) -> None:
    tmp_path, instance = instance_home
    proc, marker = start_run(tmp_path, "alive", hold=600)
    try:
        wait_for(marker, 60)
        (line,) = stale_runs.pool_blockers(instance)
        assert f"pid {proc.pid}, alive" in line and f"kill {proc.pid}" in line
        assert stale_runs.reap_stale_runs(instance) == []  # alive: not touched
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    # While its own run waits for the pool, `segflow run`'s progress thread reaps the dead one.
    out = io.StringIO()
    progress = launcher.Progress(instance, "the-waiting-run", out)
    progress.stale_check_seconds = 0
    progress.heartbeat()
    assert f"pid {proc.pid} is gone) marked failed, freed 1" in out.getvalue()
    assert stale_runs.pool_blockers(instance) == []
    assert stale_runs.pool_run_ids(instance) == set()


def test_recycled_pid_counts_as_dead() -> None:
    # Our own pid is alive, but a process created after the run started is not the run's.
    assert stale_runs.process_alive(os.getpid(), run_started_at=None)
    assert not stale_runs.process_alive(os.getpid(), run_started_at=time.time() - 3600 * 24 * 365)
    assert not stale_runs.process_alive(2**22 + 7, run_started_at=None)
