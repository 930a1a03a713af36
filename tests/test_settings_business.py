"""Business-event and horizon settings are validated with errors that name the setting."""

from __future__ import annotations

import pytest

from orchestration import run_window
from orchestration.settings import SettingError, Settings


def test_defaults_and_what_dbt_is_told(monkeypatch):
    for name in (
        "SEGFLOW_ACTIVITY_EVENTS",
        "SEGFLOW_PURCHASE_SOURCE",
        "SEGFLOW_PURCHASE_EVENTS",
        "SEGFLOW_LTV_HORIZON_DAYS",
    ):
        monkeypatch.delenv(name, raising=False)
    values = run_window.dbt_vars(Settings.from_env())
    assert values["activity_events"] == [] and values["purchase_source"] == "invoices"
    assert values["purchase_events"] == [] and values["ltv_horizon_days"] == 90
    monkeypatch.setenv("SEGFLOW_ACTIVITY_EVENTS", "core_features, Signed In")
    monkeypatch.setenv("SEGFLOW_PURCHASE_SOURCE", "Both")
    monkeypatch.setenv("SEGFLOW_PURCHASE_EVENTS", "Data Exported")
    monkeypatch.setenv("SEGFLOW_LTV_HORIZON_DAYS", "30")
    values = run_window.dbt_vars(Settings.from_env())
    assert (
        "Report Created" in values["activity_events"] and "Signed In" in values["activity_events"]
    )
    assert values["purchase_source"] == "both" and values["purchase_events"] == ["Data Exported"]
    assert values["ltv_horizon_days"] == 30


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SEGFLOW_ACTIVITY_EVENTS": "Signed In,Nope"}, "SEGFLOW_ACTIVITY_EVENTS: 'Nope'"),
        ({"SEGFLOW_PURCHASE_SOURCE": "orders"}, "SEGFLOW_PURCHASE_SOURCE='orders'"),
        # the default purchase event is not in this project's tracking plan
        ({"SEGFLOW_PURCHASE_SOURCE": "events"}, "SEGFLOW_PURCHASE_EVENTS: 'Order Completed'"),
        ({"SEGFLOW_LTV_HORIZON_DAYS": "0"}, "SEGFLOW_LTV_HORIZON_DAYS=0"),
        ({"SEGFLOW_LTV_HORIZON_DAYS": "ninety"}, "SEGFLOW_LTV_HORIZON_DAYS='ninety'"),
        ({"SEGFLOW_CHURN_HORIZON_DAYS": "1000"}, "SEGFLOW_CHURN_HORIZON_DAYS=1000"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingError, match=message.replace("(", r"\(")):
        Settings.from_env()


def test_invoices_only_ignores_purchase_events(monkeypatch):
    """Purchase event names are checked only when track calls count as purchases."""
    monkeypatch.setenv("SEGFLOW_PURCHASE_SOURCE", "invoices")
    monkeypatch.setenv("SEGFLOW_PURCHASE_EVENTS", "Nope")
    assert Settings.from_env().purchase_events == ()
