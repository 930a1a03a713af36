"""The CLI's progress: one line per step with its counts, and a blocked run says what it found."""

from __future__ import annotations

import io
import re
import time
import uuid

import dagster as dg
import psutil

from orchestration.launcher import Progress


@dg.asset
def upstream_table() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 1234})


@dg.asset(
    deps=[upstream_table],
    check_specs=[dg.AssetCheckSpec("gx_suite", asset="checked_table", blocking=True)],
)
def checked_table():
    yield dg.MaterializeResult(metadata={"dagster/row_count": 0})
    yield dg.AssetCheckResult(
        check_name="gx_suite",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "blocking_detail": dg.MetadataValue.json(
                [
                    {
                        "table": "main.checked_table",
                        "rule": "checked_table.row_count.vs_trailing_median",
                        "partitions": ["2026-08-02"],
                        "expected": "row count no more than 80% below the median",
                        "found": "0 rows against a median of 120",
                    }
                ]
            )
        },
    )


@dg.asset(deps=[checked_table])
def downstream_table() -> None:
    return None


def test_progress_prints_steps_counts_and_blocking_findings() -> None:
    job = dg.Definitions(
        assets=[upstream_table, checked_table, downstream_table],
        jobs=[dg.define_asset_job("tiny")],
    ).resolve_job_def("tiny")
    instance = dg.DagsterInstance.ephemeral()
    run_id = str(uuid.uuid4())
    out = io.StringIO()
    progress = Progress(instance, run_id, out)
    age_at_start = time.time() - psutil.Process().create_time()
    progress.start()
    result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
    progress.stop()
    age_at_end = time.time() - psutil.Process().create_time()
    lines = out.getvalue().splitlines()
    assert not result.success  # the blocking check stops downstream_table
    # the fixed cost: wall from the process's start (interpreter, imports) to the first step
    first = re.search(r"first step started ([\d.]+)s after the command started", out.getvalue())
    assert first and age_at_start - 0.1 <= float(first.group(1)) <= age_at_end + 0.1, lines
    assert any(
        line.split()[:2] == ["ok", "upstream_table"] and "row count 1,234" in line for line in lines
    ), lines
    # wall and CPU seconds of each step, clocked as its start and end events are stored
    ok_line = next(line for line in lines if line.split()[1:2] == ["upstream_table"])
    assert re.search(r"[\d.]+s \(\s*[\d.]+ CPU s\)", ok_line), ok_line
    wall, cpu = progress.step_seconds("upstream_table")
    assert 0.0 < wall < 60 and cpu >= 0.0
    failed = next(line for line in lines if line.split()[1:2] == ["checked_table"])
    assert failed.split()[0] == "FAILED", lines
    assert (
        "checked_table / gx_suite: checked_table.row_count.vs_trailing_median: expected" in failed
    )
    assert progress.blocked == [
        "main.checked_table partition 2026-08-02: rule checked_table.row_count.vs_trailing_median: "
        "expected row count no more than 80% below the median; found: 0 rows against a median "
        "of 120 (see the check's page in the Dagster UI)"
    ]


class BreakerTripped(RuntimeError):
    pass


@dg.asset
def skipped_model() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"status": "skipped: 12 training rows, needs 100"})


@dg.asset(check_specs=[dg.AssetCheckSpec("size_change", asset="segments_table")])
def segments_table():
    yield dg.MaterializeResult(metadata={"dagster/row_count": 5})
    yield dg.AssetCheckResult(
        check_name="size_change",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"warnings": dg.MetadataValue.md("- power_users: 120 -> 12 (-90%)")},
    )


@dg.asset(deps=[segments_table])
def sync_step() -> None:
    raise BreakerTripped(
        "circuit breaker: 996 of 1000 known people would change; re-run with override_breaker=True"
    )


@dg.asset(deps=[sync_step])
def report_step() -> None:
    return None


def test_steps_say_skip_and_the_failure_cause_and_the_summary_counts() -> None:
    from orchestration.report.run_summary import summary_lines

    job = dg.Definitions(
        assets=[skipped_model, segments_table, sync_step, report_step],
        jobs=[dg.define_asset_job("tiny")],
    ).resolve_job_def("tiny")
    instance = dg.DagsterInstance.ephemeral()
    run_id = str(uuid.uuid4())
    out = io.StringIO()
    progress = Progress(instance, run_id, out)
    progress.start()
    job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
    progress.stop()
    progress.mark_not_run(node.name for node in job.nodes)
    lines = {line.split()[1]: line for line in out.getvalue().splitlines() if len(line.split()) > 1}
    assert lines["skipped_model"].split()[0] == "SKIP"
    assert lines["skipped_model"].endswith("12 training rows, needs 100")
    failed = lines["sync_step"]
    assert failed.split()[0] == "FAILED"
    assert "circuit breaker: 996 of 1000" in failed and "executing op" not in failed
    assert "segflow run --override-breaker" in failed
    assert lines["report_step"].split()[0] == "SKIP"
    summary = summary_lines(progress.steps, progress.checks)
    assert summary[0] == "steps   PASS=1 WARN=0 ERROR=1 SKIP=2 TOTAL=4"
    assert summary[1] == "checks  PASS=0 WARN=1 ERROR=0 SKIP=0 TOTAL=1"
    assert "  WARN  segments_table / size_change: power_users: 120 -> 12 (-90%)" in summary


@dg.asset(name="segflow_report", deps=[sync_step])
def report_asset() -> None:
    return None


def test_the_report_is_built_when_the_sync_step_failed(tmp_path, monkeypatch) -> None:
    import duckdb

    from orchestration.launcher import _report_after_failure
    from orchestration.settings import Settings

    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    settings = Settings.from_env()
    duckdb.connect(str(settings.duckdb_path)).close()
    job = dg.Definitions(
        assets=[segments_table, sync_step, report_asset], jobs=[dg.define_asset_job("tiny")]
    ).resolve_job_def("tiny")
    instance = dg.DagsterInstance.ephemeral()
    run_id = str(uuid.uuid4())
    progress = Progress(instance, run_id, io.StringIO())
    progress.start()
    job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
    progress.stop()
    progress.mark_not_run(node.name for node in job.nodes)
    line = _report_after_failure(job, progress, settings, instance)
    assert (
        line
        == f"report: {settings.report_dir / 'index.html'} (built after the run: its step did not run)"
    )
    overview = (settings.report_dir / "index.html").read_text()
    assert "FAILURE" in overview and "sync_step" in overview  # the failed run and its step
