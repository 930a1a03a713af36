"""What the UI shows for every asset: owners, kinds, tags, its group's description; freshness
policies with the configured maximum age on the raw tables, scores and sync; sensors and
schedules with their documented default state."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from contracts.raw import RAW_TABLES
from orchestration.definitions import FRESHNESS_ASSETS, GROUPS, decorate, defs, freshness_policy
from orchestration.defs.jobs import schedule_default_status
from orchestration.settings import Settings


@pytest.fixture(scope="module")
def location() -> dg.Definitions:
    return defs()


def test_every_asset_has_owner_kinds_tags_and_group_description(location):
    specs = list(location.resolve_all_asset_specs())
    assert len(specs) > 20
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.group_name in GROUPS, f"{name}: group {spec.group_name!r} has no description"
        assert spec.owners and all(o.startswith("team:") for o in spec.owners), name
        assert 1 <= len(spec.kinds) <= 10, name
        assert {"layer", "pii", "partitions"} <= set(spec.tags), name
        assert spec.metadata["group_description"] == GROUPS[spec.group_name]["description"]
        assert spec.description, f"{name} has no description"
    assert {s.key.to_user_string() for s in specs} >= {*FRESHNESS_ASSETS, "segflow_report"}


def test_freshness_policies_on_raw_scores_and_sync(location):
    policy_by_key = {
        s.key.to_user_string(): s.freshness_policy for s in location.resolve_all_asset_specs()
    }
    hours = Settings.from_env().freshness_max_age_hours
    guarded = [*(f"raw/{table}" for table in RAW_TABLES), "user_scores", "destination_sync"]
    assert sorted(FRESHNESS_ASSETS) == sorted(guarded)
    for key in guarded:
        policy = policy_by_key[key]
        assert isinstance(policy, dg.FreshnessPolicy), key
        assert policy.fail_window.to_timedelta() == timedelta(hours=hours), key
    assert policy_by_key["fct_user_features"] is None  # only the guarded tables carry one


def test_max_age_is_a_setting(monkeypatch):
    monkeypatch.setenv("SEGFLOW_FRESHNESS_MAX_AGE_HOURS", "6")
    policy = freshness_policy()
    assert policy.fail_window.to_timedelta() == timedelta(hours=6)
    assert policy.warn_window.to_timedelta() == timedelta(hours=4.5)
    spec = decorate(dg.AssetSpec(["raw", "events"], group_name="ingest"), policy)
    assert spec.freshness_policy == policy and spec.owners == ["team:data-platform"]


def test_sensors_running_and_schedules_stopped_by_default(location, monkeypatch):
    sensors = {s.name: s for s in location.sensors}
    assert set(sensors) >= {"segflow_run_failure_alert", "segflow_landing_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    assert {s.default_status for s in location.schedules} == {dg.DefaultScheduleStatus.STOPPED}
    monkeypatch.setenv("SEGFLOW_SCHEDULES_RUNNING", "1")
    assert schedule_default_status() == dg.DefaultScheduleStatus.RUNNING


def test_stale_table_fails_its_freshness_policy(monkeypatch):
    """Dagster's own evaluator (what the freshness daemon runs) on a raw table decorated like
    the code location: PASS after 1 h, WARN after 3/4 of the max age, FAIL after it."""
    import asyncio

    from dagster._core.definitions.freshness_evaluator import TimeWindowFreshnessPolicyEvaluator
    from dagster._core.loader import LoadingContextForTest
    from dagster._core.test_utils import freeze_time
    from dagster._time import get_current_datetime

    monkeypatch.setenv("SEGFLOW_FRESHNESS_MAX_AGE_HOURS", "8")
    spec = decorate(dg.AssetSpec(["raw", "events"], group_name="ingest"), freshness_policy())

    @dg.multi_asset(specs=[spec])
    def raw_events():
        return dg.MaterializeResult(asset_key=spec.key)

    node = dg.Definitions(assets=[raw_events]).resolve_asset_graph().get(spec.key)
    instance = dg.DagsterInstance.ephemeral()

    def state():
        evaluator = TimeWindowFreshnessPolicyEvaluator()
        return asyncio.run(evaluator.evaluate_freshness(LoadingContextForTest(instance), node))

    assert state().value == "UNKNOWN"  # never materialized
    assert dg.materialize([raw_events], instance=instance).success
    now = get_current_datetime()
    seen = {}
    for hours in (1, 7, 9):
        with freeze_time(now + timedelta(hours=hours)):
            seen[hours] = state().value
    assert seen == {1: "PASS", 7: "WARN", 9: "FAIL"}
