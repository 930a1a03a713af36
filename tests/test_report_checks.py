"""The report and the run summary read check results whatever state other runs are in: a
check planned by a run that has not evaluated it (a queued backfill, a run that died) is read
as its latest finished evaluation, with the failed check's message."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.report import latest_checks

BEHAVIOUR = {"raise": False}


@dg.asset(check_specs=[dg.AssetCheckSpec("size_change", asset="scored_table")])
def scored_table():
    if BEHAVIOUR["raise"]:
        raise RuntimeError("the step died before its check ran")
    yield dg.MaterializeResult(metadata={"dagster/row_count": 3})
    yield dg.AssetCheckResult(
        check_name="size_change",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"warnings": dg.MetadataValue.md("- power_users: 120 -> 12 (-90%)")},
    )


def _run(instance: dg.DagsterInstance, job) -> None:
    job.execute_in_process(instance=instance, raise_on_error=False)


def test_latest_checks_skip_planned_records_and_keep_the_message() -> None:
    defs = dg.Definitions(assets=[scored_table], jobs=[dg.define_asset_job("tiny")])
    job = defs.resolve_job_def("tiny")
    keys = defs.resolve_asset_graph().asset_check_keys
    instance = dg.DagsterInstance.ephemeral()
    BEHAVIOUR["raise"] = False
    _run(instance, job)
    BEHAVIOUR["raise"] = True  # the next run plans the check and never evaluates it
    try:
        _run(instance, job)
    finally:
        BEHAVIOUR["raise"] = False
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(keys))
    assert {r.status.value for r in latest.values()} == {"PLANNED"}  # the state that crashed
    checks = latest_checks(instance, keys)
    assert len(checks) == 1
    row = checks.iloc[0]
    assert (row["check"], row["severity"], bool(row["passed"])) == ("size_change", "WARN", False)
    assert row["message"] == "power_users: 120 -> 12 (-90%)"


def test_a_check_only_ever_planned_is_left_out() -> None:
    defs = dg.Definitions(assets=[scored_table], jobs=[dg.define_asset_job("tiny")])
    keys = defs.resolve_asset_graph().asset_check_keys
    instance = dg.DagsterInstance.ephemeral()
    BEHAVIOUR["raise"] = True
    try:
        _run(instance, defs.resolve_job_def("tiny"))
    finally:
        BEHAVIOUR["raise"] = False
    assert latest_checks(instance, keys).empty
