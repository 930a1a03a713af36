"""Training never crashes on the shape of the data: degenerate columns are dropped and logged,
labels that cannot support a model skip it with a reason, declared features are exactly what
the fitted model uses, label metrics are logged, and the BG/NBD + Gamma-Gamma baseline fits.

One MLflow sqlite store for the module (creating one runs migrations for several seconds);
small synthetic marts so each fit takes a second or two.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from support.ml_marts import synthetic_marts
from threadpoolctl import threadpool_limits

from contracts import tracking_plan
from contracts.models import CHURN_MODEL, LabelDefinition
from ml import clv
from ml.feature_sets import declared_features
from ml.features import FeatureError
from ml.tracking import train_model
from ml.train import ModelSkipped

PLAN = tracking_plan.load()
MILESTONES = PLAN.milestone_names
COUNTERS = PLAN.counter_columns


def _declared(kind: str) -> tuple[str, ...]:
    return declared_features(kind, milestones=MILESTONES, counters=COUNTERS)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("mlflow_robust")
    with threadpool_limits(limits=1):
        yield {"uri": f"sqlite:///{folder / 'mlflow.db'}", "artifacts": folder / "artifacts"}


@pytest.fixture(scope="module")
def marts() -> dict[str, pd.DataFrame]:
    return synthetic_marts(n_users=300, n_weeks=6, seed=5)


def _run_params(store, run_id: str) -> dict[str, str]:
    return MlflowClient(store["uri"]).get_run(run_id).data.params


def test_degenerate_columns_are_dropped_logged_and_training_succeeds(store, marts):
    """Empty, constant and nearly empty columns used to reach the gradient-boosting binner
    and crash with "window shape cannot be larger than input array shape"."""
    df = marts["ml_conversion_training"].copy()
    df["days_to_first_value"] = pd.array([pd.NA] * len(df), dtype="Int64")  # empty
    df["support_tickets_total"] = 3  # constant
    df["mrr"] = np.where(np.arange(len(df)) < 4, 49.0, np.nan)  # 4 non-null values
    df["country"] = "US"  # constant category
    declared = (*_declared("conversion"), "mrr")
    result = train_model("conversion", df, store["uri"], store["artifacts"], features=declared)
    assert {"days_to_first_value", "support_tickets_total", "mrr", "country"} <= set(
        result.dropped_features
    )
    assert "empty" in result.dropped_features["days_to_first_value"]
    assert "constant" in result.dropped_features["support_tickets_total"]
    assert "nearly empty" in result.dropped_features["mrr"]
    assert any("days_to_first_value dropped" in w for w in result.warnings)
    params = _run_params(store, result.run_id)
    assert "days_to_first_value: empty" in params["dropped_features"]
    assert set(result.feature_columns) == set(declared) - set(result.dropped_features)


@pytest.fixture(scope="module")
def churn_declared(store, marts):
    """A churn model trained once on the declared features (two tests read it): the result
    and the registered champion loaded right after it."""
    from ml import registry

    result = train_model(
        "churn",
        marts["ml_churn_training"],
        store["uri"],
        store["artifacts"],
        features=_declared("churn"),
    )
    return result, registry.load_by_alias(CHURN_MODEL, store["uri"])


def test_every_declared_feature_reaches_the_fitted_model(store, churn_declared):
    """A declared feature missing from the fitted model fails this test (issue 12)."""
    declared = _declared("churn")
    result, _ = churn_declared
    assert not result.dropped_features
    assert result.feature_columns == [c for c in result.feature_columns if c in declared]
    assert set(result.feature_columns) == set(declared)
    assert "revenue_to_date" in result.feature_columns
    fitted = result.holdout_predictions
    assert len(fitted) and fitted["prediction"].between(0, 1).all()
    # the model's stored spec is what scoring will prepare
    client = MlflowClient(store["uri"])
    meta_path = client.download_artifacts(result.run_id, "segflow_model_meta.json")
    with open(meta_path) as handle:
        meta = json.load(handle)
    spec_columns = (
        meta["feature_spec"]["numeric"]
        + meta["feature_spec"]["boolean"]
        + meta["feature_spec"]["categorical"]
    )
    assert set(spec_columns) == set(declared)
    assert meta["declared_features"] == list(declared)


def test_declared_feature_missing_from_the_table_fails_naming_it(store, marts):
    df = marts["ml_churn_training"].drop(columns=["recency_ratio"])
    with pytest.raises(FeatureError, match="recency_ratio"):
        train_model("churn", df, store["uri"], store["artifacts"], features=_declared("churn"))


def test_single_class_and_few_positives_skip_with_reason(store, marts):
    df = marts["ml_churn_training"].copy()
    df["churned_next_window"] = False
    with pytest.raises(ModelSkipped, match=r"churn: \d+ training rows .* 0 positive"):
        train_model("churn", df, store["uri"], store["artifacts"], features=_declared("churn"))
    df.loc[df.index[:4], "churned_next_window"] = True  # a handful of positives in the whole set
    with pytest.raises(ModelSkipped, match="need at least 10 of each class"):
        train_model("churn", df, store["uri"], store["artifacts"], features=_declared("churn"))


def test_no_revenue_skips_ltv_with_reason(store, marts):
    df = marts["ml_ltv_training"].assign(ltv_future=0.0)
    with pytest.raises(ModelSkipped, match="no revenue"):
        train_model("ltv", df, store["uri"], store["artifacts"], features=_declared("ltv"))


def test_tiny_data_and_one_snapshot_skip_cleanly(store, marts):
    df = marts["ml_churn_training"]
    tiny = df[df["user_id"].isin(df["user_id"].unique()[:12])]
    with pytest.raises(ModelSkipped, match="need at least 100"):
        train_model("churn", tiny, store["uri"], store["artifacts"], features=_declared("churn"))
    one_day = df[df["snapshot_date"] == df["snapshot_date"].max()]
    with pytest.raises(ModelSkipped, match="only one snapshot"):
        train_model("churn", one_day, store["uri"], store["artifacts"], features=_declared("churn"))


def test_label_definition_base_rate_and_already_gone_share_are_logged(store, marts):
    """A cancellation label whose positives are mostly already inactive at the snapshot is
    flagged (inactivity churn trains on quiet customers on purpose: not flagged)."""
    df = marts["ml_churn_training"].copy()
    quiet = df["days_since_last_active"] >= 28
    df["churned_next_window"] = quiet | (np.random.default_rng(0).random(len(df)) < 0.05)
    label = LabelDefinition("cancellation", 28, 28, "cancelled within 28 days")
    result = train_model(
        "churn", df, store["uri"], store["artifacts"], features=_declared("churn"), label=label
    )
    share = result.label_metrics["positives_already_inactive_share"]
    holdout = df[df["snapshot_date"] == df["snapshot_date"].max()]
    expected = (holdout.loc[holdout["churned_next_window"], "days_since_last_active"] >= 28).mean()
    assert share == pytest.approx(expected)
    run = MlflowClient(store["uri"]).get_run(result.run_id)
    assert run.data.params["label_definition"] == "cancellation"
    assert run.data.metrics["label_holdout_base_rate"] == pytest.approx(
        holdout["churned_next_window"].mean()
    )
    assert "top_decile_lift" in run.data.metrics
    if share > 0.5:
        assert "already gone" in run.data.tags["segflow.label_flag"]


def _simulate_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, weeks: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers born at 0 who buy at rate lambda and die after each purchase with prob p.
    Returns lifetime columns at `weeks` and the purchase count in the next 13 weeks."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    rows, future = [], np.zeros(n)
    for i in range(n):
        t, times, alive = 0.0, [0.0], True
        while alive:
            t += rng.exponential(1 / lam[i])
            if t > weeks + 13:
                break
            times.append(t)
            alive = rng.random() >= p[i]
        past = [x for x in times if x <= weeks]
        future[i] = sum(1 for x in times if weeks < x <= weeks + 13)
        rows.append(
            {
                "active_days_total": len(past),
                "days_since_first_active": weeks * 7,
                "days_since_last_active": (weeks - past[-1]) * 7,
                "days_since_signup": weeks * 7,
            }
        )
    return pd.DataFrame(rows), future


def test_bgnbd_recovers_its_parameters_and_ranks_future_inactivity():
    true = {"r": 0.8, "alpha": 4.0, "a": 0.8, "b": 2.5}
    frame, future = _simulate_bgnbd(3000, **true, weeks=39, seed=1)
    data = clv.rfm(frame, "active_days_total", "days_since_first_active", "days_since_last_active")
    model = clv.BgNbd.fit(data, penalty=0.0)
    assert model.r == pytest.approx(true["r"], rel=0.3)
    assert model.alpha == pytest.approx(true["alpha"], rel=0.4)
    quiet = clv.BgNbd.p_no_transaction(model, data, 13)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(future == 0, quiet) > 0.75
    expected = model.expected_transactions(data, 13)
    assert expected.sum() == pytest.approx(future.sum(), rel=0.2)


def test_gamma_gamma_expected_spend_shrinks_to_population_mean():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 8, 2000).astype(float)
    nu = rng.gamma(6.0, 1 / 0.1, 2000)  # customer mean spend ~ 60
    m = np.array(
        [rng.gamma(2.0, 1 / nu_i, size=k).mean() for k, nu_i in zip(x.astype(int), nu, strict=True)]
    )
    model = clv.GammaGamma.fit(x, m)
    spend = model.expected_spend(x, m)
    assert np.corrcoef(spend, 2.0 / nu)[0, 1] > 0.5
    population = model.expected_spend(np.array([0.0]), np.array([np.nan]))[0]
    assert population == pytest.approx(np.mean(2.0 / nu), rel=0.3)


def test_fast_reason_path_equals_re_predicting_the_pipeline(churn_declared, marts):
    """Reason codes change a numeric column in the transformed matrix instead of re-running
    the preprocessing; the contributions must equal the plain re-predict of the pipeline."""
    from ml.features import FeatureSpec, prepare_features
    from ml.pipeline_predict import PipelinePredict
    from ml.reasons import feature_contributions

    _, champion = churn_declared
    spec = FeatureSpec.from_dict(champion.meta["feature_spec"])
    X = prepare_features(marts["fct_user_features"].head(400), spec)
    fast = PipelinePredict(champion.model, spec, proba=True)
    # the one-hot encoder runs once per distinct combination: the same matrix as sklearn's
    assert spec.categorical and fast._parts() is not None
    plain = np.asarray(champion.model.named_steps["prep"].transform(X), dtype=float)
    assert np.array_equal(fast.transform(X), plain, equal_nan=True)
    if champion.meta["candidate"] == "boosted":  # numbers pass through the tree pipeline
        assert fast.numeric_position("days_since_last_active") is not None
    slow = feature_contributions(X, spec, lambda f: champion.model.predict_proba(f)[:, 1])
    np.testing.assert_allclose(
        feature_contributions(X, spec, fast).to_numpy(), slow.to_numpy(), atol=1e-12
    )
    assert 0 < len(champion.meta["reason_features"]) <= 12
