"""The store demo profile: a repeat-purchase shop in the landing layout the loader reads, with
ground truth that matches what happened (demo/store.py)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from demo.store import generate_store
from orchestration.sources.load import load_partitions

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

START = date(2025, 3, 3)


def test_store_demo_loads_cleanly_and_truth_matches_the_orders(tmp_path):
    summary = generate_store(
        tmp_path / "landing",
        tmp_path / "truth",
        users=400,
        days=60,
        seed=5,
        start=START,
        history_days=120,
    )
    again = generate_store(
        tmp_path / "landing2",
        tmp_path / "truth2",
        users=400,
        days=60,
        seed=5,
        start=START,
        history_days=120,
    )
    assert summary.rows == again.rows  # same seed, same data
    dates = [START + timedelta(days=i) for i in range(60)]
    conn = duckdb.connect()
    for table in ("crm_contacts", "events", "billing_invoices"):
        report = load_partitions(conn, table, dates, tmp_path / "landing", "demo", 3)
        assert report.quarantine_preview.empty, (table, report.quarantine_preview.head())
    contacts = conn.execute("select count(distinct user_id) from raw.crm_contacts").fetchone()[0]
    assert contacts == 400  # the existing base is exported on the first day
    orders = conn.execute(
        "select user_id, cast(paid_at as date) as day, amount, currency from raw.billing_invoices"
    ).df()
    truth = pd.read_parquet(tmp_path / "truth" / "truth_weekly.parquet")
    users = pd.read_parquet(tmp_path / "truth" / "truth_users.parquet")
    assert {
        "p_alive",
        "expected_revenue_90d",
        "expected_purchases_365d",
        "p_churn_28d",
        "p_no_purchase_28d",
    } <= set(truth.columns)
    # customers who left silently never order after their churn date
    left = users.dropna(subset=["churn_date"]).set_index("user_id")["churn_date"]
    after = orders[orders["user_id"].isin(left.index)]
    assert (pd.to_datetime(after["day"]) <= pd.to_datetime(after["user_id"].map(left))).all()
    # heterogeneous rates: the busiest decile buys far more often than the median customer
    rates = users["purchase_rate_daily"]
    assert rates.quantile(0.9) > 2.5 * rates.median()
    assert orders.groupby("user_id").size().max() >= 5
    # the truth's expected purchases rank the realised ones
    last = truth[truth["snapshot_date"] == truth["snapshot_date"].min()]
    future = orders[pd.to_datetime(orders["day"]) > pd.Timestamp(last["snapshot_date"].iloc[0])]
    realised = future.groupby("user_id").size().reindex(last["user_id"]).fillna(0).to_numpy()
    assert np.corrcoef(last["expected_purchases_90d"], realised)[0, 1] > 0.3
    # the observable oracle (Bayes posterior from the written data only) is calibrated, and
    # ranks below the clairvoyant truth, which knows who silently left
    snap = pd.Timestamp(last["snapshot_date"].iloc[0])
    month = future[pd.to_datetime(future["day"]) <= snap + pd.Timedelta(days=28)]
    realised_28 = month.groupby("user_id").size().reindex(last["user_id"]).fillna(0).to_numpy()
    observable = last["observable_expected_purchases_28d"].to_numpy()
    assert 0.8 < observable.sum() / realised_28.sum() < 1.25
    assert truth["observable_p_alive"].between(0, 1).all()
    clairvoyant = np.corrcoef(last["expected_purchases_28d"], realised_28)[0, 1]
    assert 0.2 < np.corrcoef(observable, realised_28)[0, 1] < clairvoyant
