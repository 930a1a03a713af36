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


def test_check_message_reads_what_each_check_found() -> None:
    from orchestration.defs.metadata import table
    from orchestration.report.run_summary import check_message

    gx = {
        "warnings": 1,  # a count, not a message
        "failing_expectations": table(
            [{"check": "amount.max", "severity": "warn", "unexpected": 2, "sample": "[9e9]",
              "message": "2 invoices above 50,000"}]
        ),
    }  # fmt: skip
    assert check_message(gx) == "1 expectation(s) failed, first: amount.max 2 invoices above 50,000"
    drift = {"drifting_features": "events_28d, plan", "max_psi": 0.31, "warnings": "none"}
    assert check_message(drift) == "drifting features: events_28d, plan (max PSI 0.31)"
    assert check_message({"reason": "12 training rows, needs 100"}) == "12 training rows, needs 100"


def test_error_cause_is_the_steps_own_error_not_what_it_was_handling() -> None:
    from dagster._utils.error import serializable_error_info_from_exc_info

    from orchestration.report.run_summary import error_cause

    try:
        try:
            raise KeyError("handled first")
        except KeyError:
            raise AttributeError("the real failure") from None
    except AttributeError:
        import sys

        inner = serializable_error_info_from_exc_info(sys.exc_info())
    try:
        raise RuntimeError("Error occurred while executing op") from AttributeError("x")
    except RuntimeError:
        import sys

        wrapped = serializable_error_info_from_exc_info(sys.exc_info())
    assert error_cause(inner) == "the real failure"
    assert error_cause(wrapped) == "x"
