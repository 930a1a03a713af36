"""fct_user_features suite: the model's columns have values and sane distributions."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from contracts import marts, tracking_plan
from expectations import QualityConfig, validate_table
from expectations.tables import FCT_USER_FEATURES

DAY = date(2025, 4, 7)
PLAN = tracking_plan.load()
EVENT_COUNT = tracking_plan.event_feature_columns(PLAN.core_features[-1:])[0]  # evt_<slug>_7d


def features_sql(day: date, n: int, **overrides: str) -> str:
    """`n` healthy rows in the contract's columns (expanded from the tracking plan)."""
    values = {
        "user_id": "'u' || i",
        "snapshot_date": f"date '{day}'",
        "signup_date": f"date '{day}' - to_days(i % 60 + 1)",
        "days_since_signup": "i % 60 + 1",
        "days_since_last_active": "i % 5",
        "days_since_first_active": "i % 50",
        "active_days_total": "i % 40 + 1",
        "mean_active_gap_days": "1.5",
        "recency_ratio": "0.5",
        "purchases_total": "i % 3",
        "days_since_first_purchase": "null",
        "days_since_last_purchase": "null",
        "avg_order_value": "0.0",
        "tenure_bucket": "'28-89d'",
        "is_new_account": "false",
        "active_days_7d": "i % 8",
        "active_days_28d": "i % 29",
        "events_7d": "i % 30",
        "events_28d": "i % 90",
        "sessions_7d": "i % 6",
        "sessions_28d": "i % 20",
        "avg_session_minutes_28d": "12.5",
        "feature_breadth_28d": "i % 9",
        "feature_depth_28d": "i % 40",
        "milestones_reached": "i % 6",
        "onboarding_completion": "(i % 6) / 5.0",
        "days_to_first_value": "null",
        "support_tickets_28d": "0",
        "support_tickets_total": "1",
        "events_prev_7d": "i % 25",
        "activity_trend": "0.1",
        "plan": "'pro'",
        "is_paid": "true",
        "mrr": "49.0",
        "revenue_to_date": "98.0",
        "industry": "'saas'",
        "company_size": "'11-50'",
        "country": "'DE'",
        "role": "'engineer'",
        "acquisition_channel": "'ads'",
        "is_active_28d": "true",
        "is_inactive": "false",
        "is_cancelled": "false",
        "is_churned": "false",
        **{column: "i % 2 = 0" for column in PLAN.milestone_columns},
        **{column: "i % 3" for column in PLAN.counter_columns},
    }
    for column, kind in marts.feature_columns(PLAN).items():  # the per-event columns
        if column.startswith("evt_"):
            values[column] = "0.1" if kind == "DOUBLE" else "i % 4"
    values.update(overrides)
    cols = [
        f"cast({values[c]} as {marts.SQL_TYPES[t]}) as {c}"
        for c, t in FCT_USER_FEATURES.columns.items()
    ]
    return f"select {', '.join(cols)} from range(1, {n + 1}) t(i)"


@pytest.fixture()
def conn(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        for back in range(8, 0, -1):
            sql = features_sql(DAY - timedelta(days=back), 100)
            if back == 8:
                connection.execute(f"create table fct_user_features as {sql}")
            else:
                connection.execute(f"insert into fct_user_features {sql}")
        yield connection


def test_clean_features_pass(conn):
    conn.execute(f"insert into fct_user_features {features_sql(DAY, 100)}")
    result = validate_table(conn, "fct_user_features", [DAY], QualityConfig())
    assert [o.message for o in result.failing] == []
    assert result.row_count == 100


def test_feature_defects(conn):
    conn.execute(
        "insert into fct_user_features "
        + features_sql(
            DAY,
            100,
            onboarding_completion="case when i = 1 then 1.5 else 0.2 end",
            days_since_signup="case when i = 2 then -3 else 10 end",
            events_28d="case when i = 3 then null else 5 end",
            avg_session_minutes_28d="case when i = 4 then 5000 else 10 end",
            **{EVENT_COUNT: "case when i = 5 then -1 else 0 end"},
        )
    )
    conn.execute(f"insert into fct_user_features {features_sql(DAY, 1)}")  # u1 twice
    bad = {o.check: o for o in validate_table(conn, "fct_user_features", [DAY]).failing}
    assert bad["fct_user_features.onboarding_completion.range"].unexpected_count == 1
    assert bad["fct_user_features.onboarding_completion.range"].blocking
    assert bad["fct_user_features.days_since_signup.range"].sample_unexpected[0] == {
        "days_since_signup": -3,
        "user_id": "u2",
        "snapshot_date": f"{DAY}T00:00:00",
    }
    assert bad["fct_user_features.events_28d.not_null"].blocking
    assert bad["fct_user_features.avg_session_minutes_28d.range"].severity == "warn"
    assert bad["fct_user_features.grain.unique"].unexpected_count == 2
    # a per-event count expanded from the tracking plan is checked like the fixed counts
    assert bad[f"fct_user_features.{EVENT_COUNT}.range"].unexpected_count == 1


def test_feature_mean_and_volume(conn):
    conn.execute(f"insert into fct_user_features {features_sql(DAY, 10, events_28d='0')}")
    result = validate_table(conn, "fct_user_features", [DAY])
    bad = {o.check: o for o in result.failing}
    mean = bad["fct_user_features.events_28d.mean"]
    assert mean.severity == "warn" and mean.observed_value == 0
    assert "observed 0" in mean.message
    assert bad["fct_user_features.row_count.vs_trailing_median"].blocking  # 10 vs 100


def test_empty_snapshot_after_steady_history_blocks(conn):
    result = validate_table(conn, "fct_user_features", [DAY])
    assert not result.outcome("fct_user_features.row_count.not_empty").blocking
    assert result.outcome("fct_user_features.row_count.vs_trailing_median").blocking


def test_empty_day_without_history_only_warns(tmp_path: Path):
    """The first day of a product (or of a window) may be empty: a warning, never a block."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        connection.execute(f"create table fct_user_features as {features_sql(DAY, 0)}")
        result = validate_table(connection, "fct_user_features", [DAY])
    empty = result.outcome("fct_user_features.row_count.not_empty")
    assert not empty.passed and empty.severity == "warn"
    assert result.blocking_failures == []


def test_quiet_weekend_is_compared_with_weekends(tmp_path: Path):
    """Weekdays at 100 rows, weekends at 30: a Sunday of 25 is healthy, a Monday of 15 is not."""
    monday = DAY + timedelta(days=14)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        connection.execute(f"create table fct_user_features as {features_sql(DAY, 0)}")
        for back in range(14, 1, -1):
            day = monday - timedelta(days=back)
            rows = 30 if day.weekday() >= 5 else 100
            connection.execute(f"insert into fct_user_features {features_sql(day, rows)}")
        sunday = monday - timedelta(days=1)
        connection.execute(f"insert into fct_user_features {features_sql(sunday, 25)}")
        connection.execute(f"insert into fct_user_features {features_sql(monday, 15)}")
        quiet_sunday = validate_table(connection, "fct_user_features", [sunday])
        dropped_monday = validate_table(connection, "fct_user_features", [monday])
    assert quiet_sunday.outcome("fct_user_features.row_count.vs_trailing_median").passed
    assert dropped_monday.outcome("fct_user_features.row_count.vs_trailing_median").blocking
