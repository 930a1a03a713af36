"""The CLI's progress: one line per step with its counts, and a blocked run says what it found."""

from __future__ import annotations

import io
import uuid

import dagster as dg

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
    progress.start()
    result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
    progress.stop()
    lines = out.getvalue().splitlines()
    assert not result.success  # the blocking check stops downstream_table
    assert any(
        line.split()[:2] == ["ok", "upstream_table"] and "row count 1,234" in line for line in lines
    ), lines
    assert progress.blocked == [
        "main.checked_table partition 2026-08-02: rule checked_table.row_count.vs_trailing_median: "
        "expected row count no more than 80% below the median; found: 0 rows against a median "
        "of 120 (see the check's page in the Dagster UI)"
    ]
