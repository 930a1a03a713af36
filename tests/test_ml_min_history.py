"""The history a first model needs, stated from the training-set rule (contracts.models
`min_history_days`): the 30-day run's text, and on real dbt the true minimum: a history of
exactly that many days starting on a Tuesday (the first Monday six days in, the worst case)
holds exactly the two labelled snapshots a time split needs, the newest one's window ending on
the last day, so one day less cannot train."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest
from dbt_fixtures import load_raw, run_dbt, simulate  # tests/ is on sys.path (rootdir conftest)

from contracts.models import KINDS, MIN_TRAINING_SNAPSHOTS, min_history_days
from ml.splits import every_k_days, time_split
from orchestration.report.model_facts import model_facts
from orchestration.report.run_summary import no_model_text
from orchestration.settings import Settings

TUESDAY = date(2025, 3, 4)


def test_a_30_day_run_is_told_the_history_the_training_rule_needs(monkeypatch):
    monkeypatch.delenv("SEGFLOW_CHURN_HORIZON_DAYS", raising=False)
    churn = model_facts(Settings.from_env())["churn"]
    assert churn.min_history_days == 42  # 6 days to the first Monday + 7 + 28 + 1
    text = no_model_text(churn, 30)
    assert text.startswith("needs 42 days of history (have 30): 2 weekly training snapshots")
    assert "28-day label window, SEGFLOW_CHURN_HORIZON_DAYS" in text
    monkeypatch.setenv("SEGFLOW_CHURN_HORIZON_DAYS", "21")
    assert "needs 35 days of history (have 30)" in no_model_text(
        model_facts(Settings.from_env())["churn"], 30
    )
    monkeypatch.setenv("SEGFLOW_LTV_HORIZON_DAYS", "30")
    assert model_facts(Settings.from_env())["ltv"].min_history_days == 44
    assert min_history_days(28, every_days=14) == 6 + 14 + 28 + 1  # every other Monday
    enough = no_model_text(model_facts(Settings.from_env())["churn"], 120)
    assert enough.startswith("has the 35 days of history it needs (have 120)")
    assert "churn_model step's skip reason" in enough


@pytest.mark.slow
def test_the_stated_minimum_is_exactly_what_real_dbt_labels(tmp_path):
    horizon = KINDS["churn"].horizon_days  # dbt_project.yml's default churn_horizon_days
    days = min_history_days(horizon)
    db = tmp_path / "warehouse.duckdb"
    load_raw(db, simulate(users=120, days=days, start=TUESDAY))
    run_dbt(["build", "--select", "+ml_churn_training"], db, tmp_path / "t")
    conn = duckdb.connect(str(db), read_only=True)
    try:
        have = conn.execute(
            "select count(distinct snapshot_date), max(snapshot_date) from main.fct_user_features"
        ).fetchone()
        train = conn.execute("select * from main.ml_churn_training").df()
    finally:
        conn.close()
    assert have[0] == days
    snapshots = sorted(set(pd.to_datetime(train["snapshot_date"]).dt.date))
    assert len(snapshots) == MIN_TRAINING_SNAPSHOTS
    assert snapshots[0] == TUESDAY + timedelta(days=6)  # the first Monday
    # the newest labelled snapshot's window ends on the last day: one day less drops it
    assert snapshots[-1] + timedelta(days=horizon) == have[1]
    kept, _ = every_k_days(train, 7)
    split = time_split(kept, horizon)
    assert len(split.train) > 0 and len(split.holdout) > 0
