"""Churn labels that mean what the business means, on the real dbt models.

A small subscription product where activity continues until the customer cancels (a cancel
event, then silence and no more invoices), with churn driven by support tickets and account
age. Built twice with the real dbt CLI: cancellation churn (28-day horizon) and inactivity
churn with a 14-day horizon (settings -> env -> dbt vars).
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dbt_fixtures import (  # tests/ is on sys.path (rootdir conftest)
    RawData,
    environ,
    load_raw,
    received_event,
    run_dbt,
)
from threadpoolctl import threadpool_limits

from contracts import tracking_plan
from contracts.models import CHURN_MODEL, LabelDefinition
from ml import registry
from ml.scoring import score_users
from ml.tracking import train_model
from orchestration.model_inputs import model_features

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

START = date(2025, 1, 6)
DAYS = 98
USERS = 300
MODELS = ["+ml_churn_training", "+ml_ltv_training", "+ml_conversion_training"]


def _subscription_product(seed: int = 3) -> tuple[RawData, dict[str, date]]:
    """Subscribers active until they cancel; returns raw rows and each user's cancel date."""
    plan = tracking_plan.load()
    rng = random.Random(seed)
    data = RawData(START, DAYS)
    end = datetime.combine(START + timedelta(days=DAYS), datetime.min.time())
    cancels: dict[str, date] = {}
    msg = 0

    def event(name: str, user: str, ts: datetime, kind: str = "track") -> None:
        nonlocal msg
        msg += 1
        data.tables["events"].append(
            received_event(f"s{msg:07d}", kind, name if kind == "track" else None, user, ts)
        )

    def contact(uid: str, at: datetime, plan_name: str | None) -> None:
        data.tables["crm_contacts"].append(
            {
                "user_id": uid,
                "email": f"{uid}@example.com",
                "signup_at": at,
                "company": "c",
                "industry": "software",
                "company_size": "1-10",
                "country": "US",
                "role": "analyst",
                "acquisition_channel": "organic",
                "plan": plan_name,
                "updated_at": at,
                "_partition_date": at.date(),
            }
        )

    for u in range(USERS):
        uid = f"s{u:04d}"
        signup_day = rng.randrange(0, 40)
        signup = datetime.combine(
            START + timedelta(days=signup_day), datetime.min.time()
        ) + timedelta(hours=9)
        contact(uid, signup, "pro")
        event(plan.milestones[0][1][0], uid, signup + timedelta(minutes=1))
        unhappy = rng.random() < 0.4
        cancel_day = None
        for d in range(signup_day, DAYS):
            day0 = datetime.combine(START + timedelta(days=d), datetime.min.time())
            age = d - signup_day
            hazard = (0.04 if unhappy else 0.001) + (0.006 if age < 28 else 0.0)
            if d > signup_day and rng.random() < hazard:
                cancel_day = d
                event(plan.cancel_events[0], uid, day0 + timedelta(hours=15))
                break
            if rng.random() < 0.6:  # activity continues up to the cancel date
                for k in range(rng.randint(1, 4)):
                    event(
                        rng.choice(plan.core_features),
                        uid,
                        day0 + timedelta(hours=10, minutes=7 * k),
                    )
            if unhappy and rng.random() < 0.15:
                event(plan.support_events[0], uid, day0 + timedelta(hours=11))
        period = signup
        k = 0
        stop = (
            datetime.combine(START + timedelta(days=cancel_day), datetime.min.time())
            if cancel_day is not None
            else end
        )
        while period < stop:
            k += 1
            data.tables["billing_invoices"].append(
                {
                    "invoice_id": f"inv-{uid}-{k}",
                    "user_id": uid,
                    "amount": 30.0,
                    "currency": "USD",
                    "status": "paid",
                    "period_start": period,
                    "period_end": period + timedelta(days=30),
                    "paid_at": period,
                    "_partition_date": period.date(),
                }
            )
            period += timedelta(days=30)
        if cancel_day is not None:
            cancels[uid] = START + timedelta(days=cancel_day)
    # Quiet users: one active on signup day only (60+ days quiet at the end), one that never
    # produced an event, one with an empty CRM plan.
    quiet = datetime.combine(START + timedelta(days=2), datetime.min.time()) + timedelta(hours=9)
    contact("quiet60", quiet, "free")
    event("Signed In", "quiet60", quiet + timedelta(minutes=5))
    contact("never_active", quiet, "free")
    contact("no_plan", quiet, None)
    event("Signed In", "no_plan", quiet + timedelta(minutes=5))
    return data, cancels


def _build(root: Path, data: RawData, env: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    db = root / "warehouse.duckdb"
    load_raw(db, data)
    with environ(**env):
        run_dbt(["build", "--select", *MODELS, "--exclude", "test_type:unit"], db, root / "target")
    return db


@pytest.fixture(scope="module")
def product() -> tuple[RawData, dict[str, date]]:
    return _subscription_product()


@pytest.fixture(scope="module")
def cancellation(tmp_path_factory, product) -> Path:
    return _build(
        tmp_path_factory.mktemp("cancel"), product[0], {"SEGFLOW_CHURN_DEFINITION": "cancellation"}
    )


@pytest.fixture(scope="module")
def inactivity14(tmp_path_factory, product) -> Path:
    return _build(
        tmp_path_factory.mktemp("inactive14"),
        product[0],
        {
            "SEGFLOW_CHURN_DEFINITION": "inactivity",
            "SEGFLOW_CHURN_HORIZON_DAYS": "14",
            "SEGFLOW_LTV_HORIZON_DAYS": "30",
        },
    )


def _read(db: Path, sql: str) -> pd.DataFrame:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute(sql).df()
    finally:
        conn.close()


def test_quiet_users_and_missing_crm_fields_get_defined_values(cancellation):
    last = _read(
        cancellation,
        "select * from main.fct_user_features where snapshot_date = "
        "(select max(snapshot_date) from main.fct_user_features)",
    )
    rows = last.set_index("user_id")
    # every known customer is on the last day, quiet or churned ones included
    assert {"quiet60", "never_active", "no_plan"} <= set(rows.index)
    assert len(rows) == USERS + 3
    assert rows.loc["quiet60", "days_since_last_active"] >= 60
    never = rows.loc["never_active"]
    assert never["days_since_last_active"] == never["days_since_signup"]
    assert never["active_days_total"] == 0 and pd.isna(never["days_since_first_active"])
    assert not rows.loc["no_plan", "is_paid"] and pd.isna(rows.loc["no_plan", "plan"])
    for column in (
        "days_since_last_active",
        "is_paid",
        "is_churned",
        "is_inactive",
        "is_cancelled",
        "active_days_total",
        "purchases_total",
        "avg_order_value",
    ):
        assert last[column].notna().all(), column


def test_cancellation_label_marks_future_cancellations_not_past_ones(cancellation, product):
    _, cancels = product
    train = _read(
        cancellation,
        "select user_id, snapshot_date, churned_next_window from main.ml_churn_training",
    )
    assert len(train) > 1000 and train["churned_next_window"].sum() > 50
    cancel = pd.to_datetime(train["user_id"].map(cancels))
    snapshot = pd.to_datetime(train["snapshot_date"])
    # no training row belongs to a customer who had already cancelled at the snapshot
    assert not (cancel <= snapshot).any()
    within = (cancel > snapshot) & (cancel <= snapshot + pd.Timedelta(days=28))
    assert (train["churned_next_window"] == within).all(), train[
        train["churned_next_window"] != within
    ].head()


def _quiet_through(daily: pd.DataFrame, horizon: int) -> pd.Series:
    """Per (user, snapshot): no activity on any day in (snapshot, snapshot + horizon]."""
    daily = daily.sort_values(["user_id", "snapshot_date"])
    out = {}
    for user, rows in daily.groupby("user_id"):
        dates = pd.to_datetime(rows["snapshot_date"]).to_numpy()
        total = rows["active_days_total"].to_numpy(int)
        for i, day in enumerate(dates):
            window = (dates > day) & (dates <= day + np.timedelta64(horizon, "D"))
            out[(user, pd.Timestamp(day))] = bool((total[window] <= total[i]).all())
    return pd.Series(out)


def test_inactivity_label_is_no_activity_in_the_horizon_for_every_customer_ever_active(
    inactivity14,
):
    """SEGFLOW_CHURN_HORIZON_DAYS=14, inactivity -> dbt labels "no activity in the next 14
    days" for every customer ever active, quiet ones included (no population filter)."""
    train = _read(
        inactivity14,
        "select t.user_id, t.snapshot_date, t.churned_next_window, "
        "f.days_since_last_active, f.active_days_total from main.ml_churn_training t "
        "join main.fct_user_features f using (user_id, snapshot_date)",
    )
    daily = _read(
        inactivity14,
        "select user_id, snapshot_date, active_days_total from main.fct_user_features",
    )
    assert len(train) > 500
    assert (train["active_days_total"] > 0).all()
    assert (train["days_since_last_active"] >= 28).sum() > 20  # quiet customers stay in
    keys = list(zip(train["user_id"], pd.to_datetime(train["snapshot_date"]), strict=True))
    h14 = _quiet_through(daily, 14).reindex(keys).to_numpy()
    h28 = _quiet_through(daily, 28).reindex(keys).to_numpy()
    assert (train["churned_next_window"].to_numpy() == h14).all()
    assert h14.sum() >= h28.sum() > 0  # a longer horizon leaves more time to come back
    # the 14-day horizon labels snapshots a 28-day one could not cover yet
    last = pd.to_datetime(daily["snapshot_date"]).max()
    assert pd.to_datetime(train["snapshot_date"]).max() + pd.Timedelta(days=28) > last


def _revenue_within(invoices: pd.DataFrame, rows: pd.DataFrame, days: int) -> np.ndarray:
    """USD paid in (snapshot, snapshot + days] per training row, from the raw invoices."""
    paid = invoices.assign(paid=pd.to_datetime(invoices["paid_at"]).dt.normalize())
    keyed = rows.assign(snap=pd.to_datetime(rows["snapshot_date"]), row=range(len(rows)))
    both = keyed.merge(paid[["user_id", "paid", "amount"]], on="user_id", how="left")
    inside = (both["paid"] > both["snap"]) & (
        both["paid"] <= both["snap"] + pd.Timedelta(days=days)
    )
    sums = both["amount"].where(inside, 0.0).groupby(both["row"]).sum()
    return sums.reindex(range(len(rows)), fill_value=0.0).to_numpy(float)


def test_ltv_horizon_setting_sets_the_label_window(cancellation, inactivity14, product):
    """SEGFLOW_LTV_HORIZON_DAYS (90 by default, 30 in inactivity14) -> dbt's ltv_future is the
    revenue in exactly that many days after the snapshot, on snapshots that horizon covers."""
    invoices = pd.DataFrame(product[0].tables["billing_invoices"])
    last = START + timedelta(days=DAYS - 1)
    snapshots = {}
    for db, days in ((cancellation, 90), (inactivity14, 30)):
        rows = _read(db, "select user_id, snapshot_date, ltv_future from main.ml_ltv_training")
        assert len(rows) > 0 and rows["ltv_future"].sum() > 0
        np.testing.assert_allclose(rows["ltv_future"], _revenue_within(invoices, rows, days))
        latest = pd.to_datetime(rows["snapshot_date"]).max().date()
        assert latest + timedelta(days=days) <= last < latest + timedelta(days=days + 7)
        snapshots[days] = rows["snapshot_date"].nunique()
    assert snapshots[30] > snapshots[90]


def test_model_on_cancellation_label_ranks_cancellations_and_quiet_user_is_scored(
    cancellation, tmp_path
):
    train = _read(cancellation, "select * from main.ml_churn_training")
    plan = tracking_plan.load()
    features = model_features("churn", plan)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with threadpool_limits(limits=1):
        result = train_model(
            "churn",
            train,
            uri,
            tmp_path / "artifacts",
            features=features,
            label=LabelDefinition("cancellation", 28, 28, "cancel within 28 days"),
        )
        assert result.metrics["roc_auc"] > 0.7, result.metrics
        assert result.label_metrics["positives_already_inactive_share"] < 0.2
        last_day = _read(
            cancellation, "select max(snapshot_date) from main.fct_user_features"
        ).iloc[0, 0]
        today = _read(
            cancellation,
            f"select * from main.fct_user_features where snapshot_date = '{last_day.date()}'",
        )
        scores = score_users(today, uri, last_day.date()).set_index("user_id")
    assert len(scores) == len(today)
    assert np.isfinite(scores.loc["quiet60", "churn_probability"])
    assert bool(scores.loc["quiet60", "is_churned"]) is False  # free, never paid: not cancelled
    assert json.dumps(result.window)  # window params are plain values


def test_boosted_model_trailing_bg_nbd_promotes_bg_nbd_and_says_why(inactivity14, tmp_path):
    """A boosted model limited to account fields (no activity history) trails the BG/NBD
    customer-base model on the inactivity label: BG/NBD becomes champion (a first version is
    no exception), registered as a pyfunc that scores like the others."""
    train = _read(inactivity14, "select * from main.ml_churn_training")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    label = LabelDefinition("inactivity", 14, 28, "no activity for 28 days, within 14")
    with threadpool_limits(limits=1):
        result = train_model(
            "churn",
            train,
            uri,
            tmp_path / "artifacts",
            features=("plan", "days_since_signup"),
            label=label,
        )
        scores = result.candidate_metrics
        assert scores["customer_base"]["roc_auc"] > scores["boosted"]["roc_auc"], scores
        assert result.winner == "customer_base"
        assert result.decision.promoted and result.champion_version == result.version
        assert "customer_base has the best holdout roc_auc" in result.decision.reason
        assert "first version" in result.decision.reason
        assert result.decision.trailing == []
        champion = registry.load_by_alias(CHURN_MODEL, uri)
        assert champion.meta["candidate"] == "customer_base"
        assert (
            champion.meta["refit_window"]["refit_max_snapshot"] == result.window["holdout_snapshot"]
        )
        last_day = _read(inactivity14, "select max(snapshot_date) from main.fct_user_features")
        day = last_day.iloc[0, 0].date()
        today = _read(
            inactivity14, f"select * from main.fct_user_features where snapshot_date = '{day}'"
        )
        scored = score_users(today, uri, day)
    assert scored["churn_probability"].between(0, 1).all()
    assert scored["churn_model_version"].eq(result.version).all()
    assert scored["churn_probability"].nunique() > 2


def test_quiet_customers_get_distinct_ranked_scores(inactivity14, tmp_path):
    """Inactivity churn trains on and scores every customer ever active: customers quiet for
    the inactivity threshold or longer are not one flat value, and the longer quiet rank
    riskier."""
    train = _read(inactivity14, "select * from main.ml_churn_training")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    label = LabelDefinition("inactivity", 14, 28, "no activity in the next 14 days")
    features = model_features("churn", tracking_plan.load())
    with threadpool_limits(limits=1):
        result = train_model(
            "churn", train, uri, tmp_path / "artifacts", features=features, label=label
        )
        day = _read(inactivity14, "select max(snapshot_date) from main.fct_user_features")
        day = day.iloc[0, 0].date()
        today = _read(
            inactivity14,
            f"select * from main.fct_user_features where snapshot_date = '{day}' "
            "and active_days_total > 0",
        )
        scores = score_users(today, uri, day)
    scored = today[["user_id", "days_since_last_active"]].merge(scores, on="user_id")
    quiet = scored[scored["days_since_last_active"] >= 28]
    assert len(quiet) >= 20 and quiet["churn_probability"].notna().all()
    assert quiet["churn_probability"].nunique() >= len(quiet) // 3, result.winner
    # ranked: recently active customers are less likely to stay quiet than long-quiet ones
    rho = scored["churn_probability"].corr(scored["days_since_last_active"], method="spearman")
    assert rho > 0.3, (rho, result.winner)


def _segments_and_kpis(db: Path, tmp: Path, env: dict[str, str], day: date) -> Path:
    """A copy of the warehouse with default segments assigned on `day` (no scores yet) and
    fct_segment_kpis built by dbt under `env`."""
    import shutil

    from contracts.marts import USER_SCORES_DDL
    from orchestration.segments.assign import assign_segments
    from orchestration.segments.config import load_config

    tmp.mkdir(parents=True, exist_ok=True)
    copy = tmp / "warehouse.duckdb"
    shutil.copy(db, copy)
    conn = duckdb.connect(str(copy))
    try:
        conn.execute(USER_SCORES_DDL)
        assign_segments(conn, load_config(), [day])
    finally:
        conn.close()
    with environ(**env):
        run_dbt(["build", "--select", "fct_segment_kpis"], copy, tmp / "target")
    return copy


def test_changing_the_churn_definition_moves_label_flag_kpi_and_default_segment(
    cancellation, inactivity14, tmp_path
):
    """One churn definition everywhere: flipping SEGFLOW_CHURN_DEFINITION moves the training
    label, is_churned, the segment KPI churn_rate and the default churn_risks segment."""
    day = START + timedelta(days=DAYS - 35)
    builds = {
        "cancellation": (cancellation, {"SEGFLOW_CHURN_DEFINITION": "cancellation"}),
        "inactivity": (
            inactivity14,
            {"SEGFLOW_CHURN_DEFINITION": "inactivity", "SEGFLOW_CHURN_HORIZON_DAYS": "14"},
        ),
    }
    seen = {}
    for name, (db, env) in builds.items():
        copy = _segments_and_kpis(db, tmp_path / name, env, day)
        seen[name] = {
            "flag": _read(
                copy,
                "select user_id, is_churned from main.fct_user_features "
                f"where snapshot_date = '{day}'",
            ).set_index("user_id")["is_churned"],
            "label": _read(
                copy,
                "select user_id, snapshot_date, churned_next_window from main.ml_churn_training",
            ),
            "kpi": _read(
                copy,
                "select segment, churn_rate, churn_rate_source from main.fct_segment_kpis "
                f"where segment_date = '{day}'",
            ).set_index("segment"),
            "risks": _read(
                copy,
                "select s.user_id, f.is_churned from main.user_segments s join "
                "main.fct_user_features f on f.user_id = s.user_id and f.snapshot_date = "
                f"s.segment_date where s.segment_date = '{day}' and "
                "list_contains(s.segments, 'churn_risks')",
            ),
        }
    cancel, inactive = seen["cancellation"], seen["inactivity"]
    # flag: the long-quiet free user is churned by inactivity, not cancelled
    assert bool(inactive["flag"]["quiet60"]) and not bool(cancel["flag"]["quiet60"])
    assert (cancel["flag"] != inactive["flag"].reindex(cancel["flag"].index)).any()
    # label: quiet60 is "no activity in 14 days" under inactivity, never cancels otherwise
    q_in = inactive["label"][inactive["label"]["user_id"] == "quiet60"]["churned_next_window"]
    q_ca = cancel["label"][cancel["label"]["user_id"] == "quiet60"]["churned_next_window"]
    assert len(q_in) and q_in.all() and len(q_ca) and not q_ca.any()
    # KPI: observed churn rates are measured with each definition, and differ
    assert (cancel["kpi"]["churn_rate_source"] == "observed").all()
    assert (inactive["kpi"]["churn_rate_source"] == "observed").all()
    both = cancel["kpi"].join(inactive["kpi"], rsuffix="_inactive", how="inner")
    assert (both["churn_rate"] - both["churn_rate_inactive"]).abs().max() > 0.01, both
    # default segment: churn_risks never holds an already-churned customer, and it moves
    for run in (cancel, inactive):
        assert len(run["risks"]) and not run["risks"]["is_churned"].any()
    assert set(cancel["risks"]["user_id"]) != set(inactive["risks"]["user_id"])
