"""What counts as activity and as a purchase, on the real dbt models: flipping
SEGFLOW_ACTIVITY_EVENTS moves activity features and the inactivity churn label; flipping
SEGFLOW_PURCHASE_SOURCE / SEGFLOW_PURCHASE_EVENTS moves the purchase features (revenue stays
invoice-based). Two users, each touched by one setting only."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dbt_fixtures import RawData, load_raw, run_dbt

pytestmark = pytest.mark.slow  # two real dbt builds

START = date(2025, 3, 3)  # a Monday
DAYS = 35
BASE = {"SEGFLOW_CHURN_DEFINITION": "inactivity", "SEGFLOW_CHURN_HORIZON_DAYS": "7"}
FLIPPED = {
    **BASE,
    "SEGFLOW_ACTIVITY_EVENTS": "core_features",
    "SEGFLOW_PURCHASE_SOURCE": "both",
    "SEGFLOW_PURCHASE_EVENTS": "Data Exported",
}


def _at(day: int, hour: int = 10) -> datetime:
    return datetime.combine(START + timedelta(days=day), datetime.min.time()) + timedelta(
        hours=hour
    )


def _data() -> RawData:
    """signin: signs in daily, uses a core feature on days 0-4 only. buyer: invoices paid on
    days 3 and 10, exports data (a core feature) on days 15 and 20."""
    data = RawData(START, DAYS)
    for uid in ("signin", "buyer"):
        data.tables["crm_contacts"].append(
            {
                "user_id": uid,
                "email": f"{uid}@example.com",
                "signup_at": _at(0, 8),
                "company": "c",
                "industry": "retail",
                "company_size": "1-10",
                "country": "US",
                "role": "founder",
                "acquisition_channel": "organic",
                "plan": "pro",
                "updated_at": _at(0, 8),
                "_partition_date": START,
            }
        )
    days = [("signin", d, "Signed In") for d in range(DAYS)]
    days += [("signin", d, "Report Created") for d in range(5)]
    days += [("buyer", d, "Data Exported") for d in (15, 20)]
    for i, (uid, day, name) in enumerate(days):
        ts = _at(day) + timedelta(minutes=i % 50)
        data.tables["events"].append(
            {
                "message_id": f"b{i:05d}",
                "type": "track",
                "event": name,
                "user_id": uid,
                "anonymous_id": None,
                "timestamp": ts,
                "received_at": ts + timedelta(seconds=3),
                "properties": "{}",
                "context": "{}",
                "_partition_date": ts.date(),
            }
        )
    for k, day in enumerate((3, 10)):
        data.tables["billing_invoices"].append(
            {
                "invoice_id": f"inv-{k}",
                "user_id": "buyer",
                "amount": 50.0,
                "currency": "USD",
                "status": "paid",
                "period_start": _at(day),
                "period_end": _at(day + 30),
                "paid_at": _at(day),
                "_partition_date": START + timedelta(days=day),
            }
        )
    return data


def _build(root: Path, env: dict[str, str], monkeypatch) -> Path:
    db = root / "warehouse.duckdb"
    load_raw(db, _data())
    with monkeypatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        run_dbt(
            ["build", "--select", "+ml_churn_training", "--exclude", "test_type:unit"],
            db,
            root / "target",
        )
    return db


def _read(db: Path, sql: str) -> pd.DataFrame:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute(sql).df()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return {
            name: _build(tmp_path_factory.mktemp(name), env, monkeypatch)
            for name, env in (("base", BASE), ("flipped", FLIPPED))
        }


def _last_day(db: Path) -> pd.DataFrame:
    return _read(
        db,
        "select * from main.fct_user_features where snapshot_date = "
        f"'{START + timedelta(days=DAYS - 1)}'",
    ).set_index("user_id")


def test_activity_events_setting_moves_activity_features_and_churn_label(builds):
    base, flipped = _last_day(builds["base"]), _last_day(builds["flipped"])
    # every event is activity by default: signing in daily keeps `signin` active
    assert base.loc["signin", "days_since_last_active"] == 0
    assert base.loc["signin", "active_days_total"] == DAYS
    # only core features count: the last one was on day 4
    assert flipped.loc["signin", "days_since_last_active"] == DAYS - 1 - 4
    assert flipped.loc["signin", "active_days_total"] == 5
    assert bool(flipped.loc["signin", "is_inactive"]) and not bool(
        base.loc["signin", "is_inactive"]
    )
    sql = "select churned_next_window from main.ml_churn_training where user_id = 'signin' and "
    sql += f"snapshot_date = '{START + timedelta(days=7)}'"
    assert not _read(builds["base"], sql).iloc[0, 0]  # signs in within the next 7 days
    assert _read(builds["flipped"], sql).iloc[0, 0]  # no core feature within them
    # the setting touches activity only: buyer's purchases are unchanged by it
    assert base.loc["buyer", "active_days_total"] == flipped.loc["buyer", "active_days_total"] == 2


def test_purchase_setting_moves_purchase_features_not_revenue(builds):
    base, flipped = _last_day(builds["base"]), _last_day(builds["flipped"])
    assert base.loc["buyer", "purchases_total"] == 2  # invoices only (default)
    assert base.loc["buyer", "days_since_last_purchase"] == DAYS - 1 - 10
    assert flipped.loc["buyer", "purchases_total"] == 4  # invoices and Data Exported calls
    assert flipped.loc["buyer", "days_since_last_purchase"] == DAYS - 1 - 20
    assert base.loc["buyer", "revenue_to_date"] == flipped.loc["buyer", "revenue_to_date"] == 100
    assert flipped.loc["buyer", "avg_order_value"] == 25
    assert base.loc["signin", "purchases_total"] == flipped.loc["signin", "purchases_total"] == 0
