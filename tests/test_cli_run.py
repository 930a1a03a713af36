"""`segflow run` as a new user meets it, on a small demo whose window starts on a Sunday: the
run succeeds, models train or are skipped with a reason, the terminal shows one line per
step and no Dagster DEBUG stream, and the run's log file holds the rest."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from support.shared_runs import SMALL_RUN_GROUP, CliRun

# builds a warehouse end to end (`make test-fast` skips it); reads the run test_report_e2e reads
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(SMALL_RUN_GROUP)]


@pytest.fixture(scope="module")
def small_run(small_cli_run: CliRun) -> tuple[subprocess.CompletedProcess, Path]:
    return small_cli_run.proc, small_cli_run.home


def test_small_sunday_window_succeeds(small_run) -> None:
    proc, _ = small_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "2026-08-02 .. 2026-09-15" in proc.stdout  # 2026-08-02 is a Sunday
    assert re.search(r"run \S+ succeeded", proc.stdout)


def test_terminal_shows_steps_not_the_debug_stream(small_run) -> None:
    proc, home = small_run
    out = proc.stdout + proc.stderr
    assert " - DEBUG - " not in out and "Traceback" not in out
    steps = re.findall(r"^  (ok|FAILED|SKIP)\s+(\S+)\s+[\d.]+s", proc.stdout, re.M)
    assert {"raw__events", "dbt_incremental"} <= {name for _, name in steps}
    assert len(proc.stdout.splitlines()) < 120  # one line per step, not thousands
    log = next((home / "logs").glob("run-*.log")).read_text()
    assert " - DEBUG - " in log and "STEP_START" in log


def test_each_model_trained_or_skipped_with_reason(small_run, monkeypatch) -> None:
    proc, home = small_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))  # the run's instance
    instance = dg.DagsterInstance.get()
    for kind in ("churn", "ltv", "conversion"):
        versions = client.search_model_versions(f"name = 'segflow-{kind}'")
        key = dg.AssetCheckKey(dg.AssetKey(f"{kind}_model"), "model_trained")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
        evaluation = record.event.dagster_event.event_specific_data if record else None
        reason = evaluation.metadata.get("reason") if evaluation else None
        if not versions:
            assert reason is not None and reason.value, f"{kind}: no version, no reason"
            assert re.search(rf"^  SKIP\s+{kind}_model\s.*\S", proc.stdout, re.M), kind
            assert re.search(
                rf"^no {kind} model yet: .*(needs|has the) \d+ days of history", proc.stdout, re.M
            )


def test_the_end_of_the_run_says_what_happened(small_run) -> None:
    proc, home = small_run
    out = proc.stdout
    steps = re.search(r"^steps   PASS=(\d+) WARN=0 ERROR=(\d+) SKIP=(\d+) TOTAL=(\d+)$", out, re.M)
    checks = re.search(r"^checks  PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=0 TOTAL=(\d+)$", out, re.M)
    assert steps and checks, out[-3000:]
    assert steps.group(2) == "0" and checks.group(3) == "0"
    warned = re.findall(r"^  WARN  (\S+) / (\S+): (.+)$", out, re.M)
    assert len(warned) == int(checks.group(2))  # every warning check, each with its message
    assert all(message.strip() for _, _, message in warned)
    assert re.search(r"^segments \(latest day\): \w+ [\d,]+", out, re.M)
    assert re.search(r"^sync to outbox as of 2026-09-15: ok; people synced [\d,]+", out, re.M)
    outbox = re.search(r"^outbox file: (\S+\.jsonl)$", out, re.M)
    assert outbox and Path(outbox.group(1)).exists()
    report = re.search(r"^report: (\S+index\.html)$", out, re.M)
    assert report and Path(report.group(1)).exists()
