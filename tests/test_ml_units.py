"""ml/ building blocks without MLflow: feature choice, time split, metrics, PSI, promotion
rule, bands and reason codes against a real fitted model."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from support.ml_marts import synthetic_marts
from threadpoolctl import threadpool_limits

from contracts.models import model_kind
from ml import candidates
from ml.drift import feature_drift, population_stability_index
from ml.estimators import calibrated_classifier, linear_revenue, logistic_baseline
from ml.feature_sets import declared_features
from ml.features import (
    FeatureError,
    declared_feature_spec,
    infer_feature_spec,
    prepare_features,
)
from ml.metrics import classification_metrics, normalized_gini, regression_metrics
from ml.pipeline_predict import PipelinePredict
from ml.promotion import decide
from ml.reasons import (
    feature_contributions,
    reason_code,
    reason_strings,
    top_reasons,
)
from ml.scoring import assign_bands
from ml.splits import time_split


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The CI box is shared; OpenMP oversubscription makes boosting crawl."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def marts() -> dict[str, pd.DataFrame]:
    return synthetic_marts(n_users=400, n_weeks=8, seed=3)


def test_feature_spec_excludes_ids_dates_and_labels(marts):
    spec = infer_feature_spec(marts["ml_ltv_training"])
    for excluded in (
        "user_id",
        "snapshot_date",
        "signup_date",
        "ltv_future",
    ):
        assert excluded not in spec.columns
    assert "reached_teammate_invited" in spec.boolean
    assert "activity_trend" in spec.numeric
    assert {"plan", "industry", "company_size", "country", "role", "acquisition_channel"} <= set(
        spec.categorical
    )
    prepared = prepare_features(marts["ml_ltv_training"], spec)
    assert prepared["reached_teammate_invited"].dtype == np.float64
    # nullable integer with NA becomes float NaN rather than an error
    assert prepared["days_to_first_value"].isna().any()


def test_declared_spec_keeps_revenue_to_date_and_never_takes_labels(marts):
    """Selection is declared, not inferred from suffixes: `revenue_to_date` is an input."""
    declared = declared_features("ltv", milestones=("teammate_invited", "first_value"))
    spec = declared_feature_spec(marts["ml_ltv_training"], declared)
    assert set(spec.columns) == set(declared)
    assert "revenue_to_date" in spec.numeric and "tenure_bucket" in spec.categorical
    with pytest.raises(FeatureError, match="ltv_future"):
        declared_feature_spec(marts["ml_ltv_training"], (*declared, "ltv_future"))
    with pytest.raises(FeatureError, match="purchases_total"):
        declared_feature_spec(marts["ml_ltv_training"].drop(columns=["purchases_total"]), declared)


def test_prepare_features_names_missing_column(marts):
    spec = infer_feature_spec(marts["ml_churn_training"])
    with pytest.raises(FeatureError, match="activity_trend"):
        prepare_features(marts["fct_user_features"].drop(columns=["activity_trend"]), spec)


def test_time_split_never_trains_on_holdout_or_later(marts):
    df = marts["ml_churn_training"]
    split = time_split(df, label_horizon_days=28)
    train_dates = set(split.train["snapshot_date"])
    assert split.holdout_date == max(df["snapshot_date"])
    assert set(split.holdout["snapshot_date"]) == {split.holdout_date}
    # every training label window (snapshot, snapshot + 28] ends by the holdout date
    assert max(train_dates) + timedelta(days=28) <= split.holdout_date
    assert len(split.train) + len(split.holdout) < len(df)  # purged weeks are left out

    explicit = time_split(df, 28, holdout_date=date(2025, 2, 10))
    assert max(explicit.train["snapshot_date"]) <= date(2025, 1, 13)
    assert set(explicit.holdout["snapshot_date"]) == {date(2025, 2, 10)}


def test_time_split_short_history_falls_back_with_warning(marts):
    df = marts["ml_ltv_training"]
    split = time_split(df, label_horizon_days=365)
    assert split.purge_days == 0 and split.warnings
    assert max(split.train["snapshot_date"]) < split.holdout_date
    with pytest.raises(FeatureError, match="only one snapshot"):
        time_split(df[df["snapshot_date"] == split.holdout_date], 28)


def test_classification_metrics_lift_and_capture():
    y = np.array([1] * 10 + [0] * 90)
    perfect = classification_metrics(y, np.linspace(1, 0, 100))
    assert perfect["roc_auc"] == 1.0
    assert perfect["top_decile_capture"] == 1.0
    assert perfect["top_decile_lift"] == pytest.approx(10.0)
    single_class = classification_metrics(np.zeros(20), np.full(20, 0.1))
    assert np.isnan(single_class["roc_auc"])


def test_normalized_gini_and_revenue_capture():
    rng = np.random.default_rng(0)
    revenue = np.where(rng.random(500) < 0.8, 0.0, rng.gamma(2, 50, 500))
    assert normalized_gini(revenue, revenue) == pytest.approx(1.0)
    assert abs(normalized_gini(revenue, rng.random(500))) < 0.2
    noisy = regression_metrics(revenue, revenue + rng.normal(0, 5, 500))
    assert noisy["normalized_gini"] > 0.9
    assert noisy["top_decile_revenue_capture"] > 0.4


def test_psi_stable_vs_shifted():
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 5000)
    assert population_stability_index(reference, rng.normal(0, 1, 5000)) < 0.02
    assert population_stability_index(reference, rng.normal(1.0, 1, 5000)) > 0.2
    plans = pd.Series(rng.choice(["free", "pro"], 3000, p=[0.7, 0.3]))
    flipped = pd.Series(rng.choice(["free", "pro", "new"], 3000, p=[0.3, 0.5, 0.2]))
    assert population_stability_index(plans, plans.sample(frac=1, random_state=1)) < 0.01
    assert population_stability_index(plans, flipped) > 0.2


def test_feature_drift_lists_drifting_and_skipped_columns():
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000)})
    current = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(2, 1, 2000), "c": 1.0})
    report = feature_drift(reference, current, threshold=0.2, columns=["a", "b", "z"])
    assert report.drifting == ["b"]
    assert report.skipped == ["z"]
    assert not report.passed
    assert report.table().iloc[0]["column"] == "b"


def _decide(challenger: float, champion: float | None, champion_version="1", note=None):
    return decide("roc_auc", "boosted", "best", challenger, "2", champion_version, champion, note)


def test_promotion_rule():
    first = _decide(0.6, None, champion_version=None)
    assert first.promoted and first.champion_version == "2" and "first version" in first.reason
    assert _decide(0.82, 0.80).promoted
    tie = _decide(0.80, 0.80)
    assert tie.promoted  # the champion never trails: a tie goes to the newer fit
    worse = _decide(0.79, 0.80)
    assert not worse.promoted and worse.champion_version == "1" and "stays" in worse.reason
    unseen = _decide(0.5, None, note="it was fitted on the holdout 2025-01-06")
    assert unseen.promoted and "fitted on the holdout" in unseen.reason
    assert _decide(0.82, 0.80).as_metrics()["champion_roc_auc"] == 0.80


def _fitted(scores: dict[str, float]) -> dict[str, candidates.Fitted]:
    return {
        n: candidates.Fitted(n, None, None, np.zeros(1), {"roc_auc": s}) for n, s in scores.items()
    }


@pytest.mark.parametrize(
    "scores",
    [
        {"boosted": 0.77, "linear": 0.78, "customer_base": 0.79},
        {"boosted": 0.90, "linear": 0.78, "customer_base": 0.79},
        {"boosted": 0.80, "linear": 0.80, "customer_base": float("nan")},
        {"boosted": float("nan"), "linear": 0.60},
    ],
)
def test_champion_is_never_below_the_best_candidate(scores):
    kind = model_kind("churn")
    fitted = _fitted(scores)
    winner, reason = candidates.select(kind, fitted)
    defined = [s for s in scores.values() if s == s]
    assert fitted[winner].metrics["roc_auc"] == max(defined)
    assert candidates.trailing(kind, winner, fitted) == []
    assert winner in reason
    if scores["boosted"] == scores.get("linear"):
        assert winner == "linear"  # ties go to the simpler candidate


def test_assign_bands_thresholds():
    bands = {"thresholds": [0.2, 0.5], "labels": ["low", "medium", "high"]}
    got = assign_bands(np.array([0.0, 0.19, 0.2, 0.49, 0.5, 0.99]), bands)
    assert list(got) == ["low", "low", "medium", "medium", "high", "high"]


def test_reason_code_mapping_generic_and_friendly(marts):
    spec = infer_feature_spec(marts["ml_churn_training"])
    assert reason_code("reached_teammate_invited", 0.0, 1.0, spec) == "no_teammate_invited"
    assert reason_code("reached_first_value", 0.0, 1.0, spec) == "no_first_value_yet"
    assert reason_code("activity_trend", -0.6, 0.0, spec) == "activity_down_50pct"
    assert reason_code("days_since_last_active", 15, 1, spec) == "inactive_14d"
    assert reason_code("events_28d", 500, 40, spec) == "events_28d_high"
    assert reason_code("plan", "Free Trial", "pro", spec) == "plan_free_trial"
    assert reason_code("mrr", float("nan"), 0.0, spec) == "mrr_missing"


@pytest.fixture(scope="module")
def churn_fit(marts):
    """A churn classifier fitted once on the synthetic mart: (spec, features, predict)."""
    train = marts["ml_churn_training"]
    spec = infer_feature_spec(train)
    X = prepare_features(train, spec)
    model = calibrated_classifier(spec, len(X)).fit(X, train["churned_next_window"].astype(int))
    return spec, X, lambda frame: model.predict_proba(frame)[:, 1]


def test_reason_codes_agree_in_sign_with_the_model(churn_fit):
    spec, X, predict = churn_fit
    sample = X.sample(300, random_state=0).reset_index(drop=True)
    reasons = top_reasons(sample, spec, predict)
    assert not reasons.empty
    assert set(reasons["feature"]) <= set(spec.columns)
    assert reasons.groupby("row").size().max() <= 3
    base = predict(sample)
    changed = sample.iloc[reasons["row"].to_numpy()].reset_index(drop=True)
    for position, feature in enumerate(reasons["feature"]):
        changed.at[position, feature] = spec.reference[feature]
    # removing a reason (setting its feature to the typical value) lowers the risk, per user
    lowered = predict(changed) < base[reasons["row"].to_numpy()]
    assert lowered.all(), reasons[~lowered]
    teammate_codes = reasons[reasons["code"] == "no_teammate_invited"]
    assert (sample.loc[teammate_codes["row"], "reached_teammate_invited"] == 0).all()


def test_reason_codes_do_not_depend_on_the_batch(churn_fit):
    """Scoring one day or a whole backfill must give each user the same codes."""
    spec, X, predict = churn_fit
    batch = X.sample(200, random_state=1).reset_index(drop=True)
    together = reason_strings(batch, spec, predict)
    alone = [reason_strings(batch.iloc[[i]], spec, predict).iloc[0] for i in range(0, 200, 20)]
    assert alone == together.iloc[list(range(0, 200, 20))].tolist()


@pytest.mark.parametrize("kind", ["churn", "ltv"])
def test_linear_models_score_a_user_alone_as_in_the_batch(marts, kind):
    """Bit for bit: a matrix product gives a row other last bits in another batch, which
    reordered near-tied codes (bench/scoring.py: alone != in the batch)."""
    train = marts["ml_churn_training" if kind == "churn" else "ml_ltv_training"]
    label = model_kind(kind).label
    spec = infer_feature_spec(train)
    X = prepare_features(train, spec)
    estimator = logistic_baseline if kind == "churn" else linear_revenue
    model = estimator(spec, len(X)).fit(X, train[label].astype(float))
    predict = PipelinePredict(model, spec, proba=kind == "churn")
    batch = X.sample(300, random_state=2).reset_index(drop=True)
    together = predict(batch)
    alone = np.array([predict(batch.iloc[[i]])[0] for i in range(len(batch))])
    assert (alone == together).all()
    reference = model.predict_proba(batch)[:, 1] if kind == "churn" else model.predict(batch)
    assert np.allclose(together, reference, rtol=1e-12)
    codes = reason_strings(batch, spec, predict)
    # the fast path (a changed number's transformed column set directly) equals re-running
    # the whole preprocessing on the changed rows
    fast = feature_contributions(batch, spec, predict)
    assert fast.abs().to_numpy().max() > 0
    assert fast.equals(feature_contributions(batch, spec, lambda frame: predict(frame)))
    # codes alone (~50 ms a user) for the users whose order is most fragile: the smallest gap
    # between two of their top contributions or to the per-user bar (top_reasons)
    rows = _nearest_ties(fast.to_numpy(), np.maximum(1e-6, 0.05 * np.abs(together)), 40)
    alone_codes = [reason_strings(batch.iloc[[i]], spec, predict).iloc[0] for i in rows]
    assert alone_codes == codes.iloc[rows].tolist()


def _nearest_ties(contributions: np.ndarray, bars: np.ndarray, n: int) -> list[int]:
    """The `n` rows whose top four contributions (and the bar) lie closest together."""
    top = -np.sort(-contributions, axis=1)[:, :4]
    levels = np.sort(np.column_stack([top, bars]), axis=1)
    gaps = np.diff(levels, axis=1).min(axis=1)
    return np.argsort(gaps, kind="stable")[:n].tolist()


def test_marts_read_back_from_duckdb_keep_their_features(marts):
    """DuckDB hands back nullable dtypes (boolean, Int32) and NULLs; none may drop a feature."""
    import duckdb

    conn = duckdb.connect()
    conn.register("mart", marts["ml_churn_training"])
    conn.execute(
        "create table t as select * replace ("
        "cast(active_days_7d as integer) as active_days_7d, "
        "case when user_id = 'u00001' then null else reached_first_value end "
        "as reached_first_value) from mart"
    )
    from_duckdb = conn.execute("select * from t").df()
    spec = infer_feature_spec(from_duckdb)
    assert spec.columns == infer_feature_spec(marts["ml_churn_training"]).columns
    prepared = prepare_features(from_duckdb, spec)
    assert (
        prepared["reached_first_value"].isna().sum() == (from_duckdb["user_id"] == "u00001").sum()
    )
    assert spec.reference["reached_first_value"] in (0.0, 1.0)


def test_scoring_rows_ordered_by_date_and_user_and_bad_keys_named():
    """score_with picks the asked days' rows, ordered by date then user; a user twice on a
    day or a null user_id fails with the table, the users and what is expected."""
    from ml.features import FeatureError
    from ml.scoring import score_with

    jan = [date(2026, 1, d) for d in (2, 2, 1, 1, 3)]

    frame = pd.DataFrame(
        {
            "user_id": ["b", "a", "c", "a", "b"],
            "snapshot_date": jan,
            "is_paid": [False] * 5,
        }
    )
    scored = score_with(frame, (None, None, None), [date(2026, 1, 1), date(2026, 1, 2)])
    assert list(zip(scored["score_date"], scored["user_id"], strict=True)) == [
        (date(2026, 1, 1), "a"),
        (date(2026, 1, 1), "c"),
        (date(2026, 1, 2), "a"),
        (date(2026, 1, 2), "b"),
    ]
    twice = pd.concat([frame, frame.iloc[[1]]], ignore_index=True)
    with pytest.raises(FeatureError, match=r"several rows for user\(s\) \['a'\]"):
        score_with(twice, (None, None, None), date(2026, 1, 2))
    no_id = frame.assign(user_id=[None, "a", "c", "a", "b"])
    with pytest.raises(FeatureError, match="null user_id"):
        score_with(no_id, (None, None, None), date(2026, 1, 2))
