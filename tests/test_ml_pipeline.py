"""The whole train -> register -> promote -> score -> drift path on a real MLflow sqlite
store (one store for the module: creating one runs migrations for several seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from support.ml_marts import synthetic_marts
from threadpoolctl import threadpool_limits

from contracts.models import CHURN_MODEL, CONVERSION_MODEL, LTV_MODEL
from ml import registry
from ml.drift import champion_drift
from ml.features import FeatureSpec, prepare_features
from ml.reasons import top_reasons
from ml.scoring import USER_SCORES_COLUMNS, missing_champions, score_users
from ml.tracking import train_model

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("mlflow")
    with threadpool_limits(limits=1):
        yield {
            "uri": f"sqlite:///{folder / 'mlflow.db'}",
            "artifacts": folder / "artifacts",
            "folder": folder,
        }


@pytest.fixture(scope="module")
def marts() -> dict[str, pd.DataFrame]:
    return synthetic_marts(n_users=500, n_weeks=8, seed=11)


def _shuffle_training_labels(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Destroy the signal in every snapshot before the holdout, keep the holdout real."""
    out = df.copy()
    earlier = out["snapshot_date"] < out["snapshot_date"].max()
    out.loc[earlier, label] = out.loc[earlier, label].sample(frac=1, random_state=5).to_numpy()
    return out


@pytest.fixture(scope="module")
def trained(store, marts) -> dict:
    """v1 (no signal) -> champion as the first version; v2 (real) beats it; v3 (no signal)
    stays challenger. Plus one LTV and one conversion model for scoring."""
    churn = marts["ml_churn_training"]
    results = {
        "v1": train_model(
            "churn",
            _shuffle_training_labels(churn, "churned_next_window"),
            store["uri"],
            store["artifacts"],
        ),
        "v2": train_model(
            "churn", churn, store["uri"], store["artifacts"], output_dir=store["folder"] / "plots"
        ),
        "v3": train_model(
            "churn",
            _shuffle_training_labels(churn, "churned_next_window"),
            store["uri"],
            store["artifacts"],
        ),
        "ltv": train_model("ltv", marts["ml_ltv_training"], store["uri"], store["artifacts"]),
        "conversion": train_model(
            "conversion", marts["ml_conversion_training"], store["uri"], store["artifacts"]
        ),
    }
    return results


def _aliases(store, name: str) -> dict[str, str]:
    aliases = MlflowClient(store["uri"]).get_registered_model(name).aliases
    return {alias: str(version) for alias, version in aliases.items()}


def test_score_without_any_champion_scores_nobody_but_keeps_every_user(store, marts):
    """Runs first in this module (before `trained` fills the store), reusing its fresh store.
    Models fail alone: no champion leaves its columns null, it does not stop scoring."""
    features = marts["fct_user_features"]
    day = features["snapshot_date"].max()
    assert missing_champions(store["uri"]) == [CHURN_MODEL, LTV_MODEL, CONVERSION_MODEL]
    scores = score_users(features, store["uri"], day)
    assert len(scores) == (features["snapshot_date"] == day).sum()
    assert scores["churn_probability"].isna().all() and scores["ltv_pred"].isna().all()
    assert scores["churn_model_version"].isna().all()
    with pytest.raises(registry.ModelNotFoundError, match=CHURN_MODEL):
        score_users(features, store["uri"], day, require_churn=True)
    # write_user_scores says which (the user_scores step warns with it, after scoring)
    import duckdb

    from ml.score_table import write_user_scores

    with duckdb.connect() as conn:
        conn.register("src", features)
        conn.execute("create table main.fct_user_features as select * from src")
        written = write_user_scores(conn, store["uri"], day, day)
    assert written.missing == [CHURN_MODEL, LTV_MODEL, CONVERSION_MODEL]
    assert written.rows == len(scores)


def test_first_version_becomes_champion_better_promotes_worse_stays(trained, store):
    v1, v2, v3 = trained["v1"], trained["v2"], trained["v3"]
    assert (v1.version, v2.version, v3.version) == ("1", "2", "3")
    assert v1.decision.promoted and v1.decision.previous_champion_version is None
    assert v2.decision.promoted and v2.decision.previous_champion_version == "1"
    # same holdout snapshot: v1's own holdout figure (fitted without the holdout) is compared
    assert v2.decision.champion_score < v2.decision.challenger_score
    assert v3.decision.champion_score > v3.decision.challenger_score
    assert "stays champion" in v3.decision.reason
    assert not v3.decision.promoted and v3.champion_version == "2"
    assert _aliases(store, CHURN_MODEL) == {"champion": "2", "challenger": "3"}


def test_run_logs_window_metrics_baseline_plots_and_decision(trained, store):
    result = trained["v2"]
    run = MlflowClient(store["uri"]).get_run(result.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["holdout_snapshot"] == "2025-02-24"
    assert params["train_max_snapshot"] < params["holdout_snapshot"]
    assert int(params["train_rows"]) == result.window["train_rows"] > 0
    for key in (
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
        "top_decile_lift",
        "top_decile_capture",
        "candidate_linear_roc_auc",
        "candidate_boosted_roc_auc",
        "candidate_customer_base_roc_auc",
        "champion_trails_a_candidate",
        "champion_roc_auc",
        "challenger_roc_auc",
    ):
        assert key in metrics, key
    assert metrics["roc_auc"] > 0.7  # the synthetic signal is learnable
    assert tags["segflow.promotion.promoted"] == "true"
    assert tags["segflow.champion_trails"] == "none" and metrics["champion_trails_a_candidate"] == 0
    winner = tags["segflow.promotion.winner"]
    assert metrics["roc_auc"] == max(
        metrics[f"candidate_{n}_roc_auc"] for n in ("boosted", "linear", "customer_base")
    )
    assert metrics["roc_auc"] == metrics[f"candidate_{winner}_roc_auc"]
    # the winner is refitted on every labelled snapshot, the holdout's included
    assert params["refit_max_snapshot"] == params["holdout_snapshot"]
    assert int(params["refit_snapshots"]) > int(params["train_snapshots"]) + 1
    artifacts = {a.path for a in MlflowClient(store["uri"]).list_artifacts(result.run_id, "plots")}
    assert {
        f"plots/{n}.png"
        for n in (
            "roc",
            "precision_recall",
            "calibration",
            "cumulative_gains",
            "feature_importance",
        )
    } <= artifacts
    assert all(Path(p).stat().st_size > 1000 for p in result.plot_paths.values())
    # artifacts land in the configured folder, not the working directory
    assert any((store["artifacts"] / CHURN_MODEL).rglob("MLmodel"))
    assert not Path("mlruns").exists()


def test_ltv_and_conversion_metrics_and_bands(trained):
    ltv = trained["ltv"]
    assert {"spearman", "normalized_gini", "top_decile_revenue_capture", "mae"} <= set(ltv.metrics)
    assert ltv.metrics["spearman"] > ltv.baseline_metrics["spearman"]
    low, high = ltv.bands["thresholds"]
    assert 0 <= low <= high
    assert trained["conversion"].metrics["roc_auc"] > 0.6


def test_scoring_uses_champion_one_row_per_active_user_deterministic(trained, store, marts):
    features = marts["fct_user_features"]
    day = features["snapshot_date"].max()
    first = score_users(features, store["uri"], day)
    second = score_users(features.sample(frac=1, random_state=1), store["uri"], day)
    active = features.loc[features["snapshot_date"] == day, "user_id"]
    assert list(first.columns) == USER_SCORES_COLUMNS
    assert len(first) == len(active) and first["user_id"].is_unique
    assert set(first["user_id"]) == set(active)
    pd.testing.assert_frame_equal(first, second)
    # champion (v2), not the newer challenger (v3)
    assert set(first["churn_model_version"]) == {"2"}
    assert first["churn_probability"].between(0, 1).all()
    assert set(first["churn_band"]) <= {"low", "medium", "high"}
    assert (first["ltv_pred"] >= 0).all() and set(first["ltv_model_version"]) == {"1"}
    paid = features.loc[features["snapshot_date"] == day].set_index("user_id")["is_paid"]
    is_paid = first["user_id"].map(paid).to_numpy()
    assert first.loc[is_paid, "conversion_probability"].isna().all()
    assert first.loc[~is_paid, "conversion_probability"].between(0, 1).all()
    assert (first["churn_reasons"].str.count(",") <= 2).all()


def test_scored_reasons_push_risk_up_in_the_champion(trained, store, marts):
    champion = registry.load_by_alias(CHURN_MODEL, store["uri"])
    spec = FeatureSpec.from_dict(champion.meta["feature_spec"])
    features = marts["fct_user_features"]
    rows = features[features["snapshot_date"] == features["snapshot_date"].max()]
    X = prepare_features(rows.sort_values("user_id"), spec).reset_index(drop=True)

    def predict(frame):
        return champion.model.predict_proba(frame)[:, 1]

    reasons = top_reasons(X, spec, predict)
    assert set(reasons["feature"]) <= set(spec.columns)
    changed = X.iloc[reasons["row"].to_numpy()].reset_index(drop=True)
    for position, feature in enumerate(reasons["feature"]):
        changed.at[position, feature] = spec.reference[feature]
    assert (predict(changed) < predict(X)[reasons["row"].to_numpy()]).all()
    # the strongest driver in the synthetic data (onboarding: teammate invited, first value;
    # milestones_reached counts both) shows up as a readable code
    assert {
        "no_teammate_invited",
        "milestones_reached_low",
        "onboarding_incomplete",
        "no_first_value_yet",
    } & set(reasons["code"])


def test_rollback_moves_champion_and_scoring_follows(trained, store, marts):
    features = marts["fct_user_features"]
    day = features["snapshot_date"].max()
    before = registry.load_by_alias(CHURN_MODEL, store["uri"])
    assert registry.load_by_alias(CHURN_MODEL, store["uri"]) is before  # loaded once
    registry.set_champion(CHURN_MODEL, 1, store["uri"])
    try:
        assert _aliases(store, CHURN_MODEL)["champion"] == "1"
        # the alias is looked up on every load: a cached version never outlives a rollback
        assert registry.load_by_alias(CHURN_MODEL, store["uri"]).version == "1"
        assert set(score_users(features, store["uri"], day)["churn_model_version"]) == {"1"}
        with pytest.raises(registry.ModelNotFoundError, match="no version 99"):
            registry.set_champion(CHURN_MODEL, 99, store["uri"])
    finally:
        registry.set_champion(CHURN_MODEL, 2, store["uri"])


def test_drift_against_champion_reference(trained, store, marts):
    features = marts["fct_user_features"]
    today = features[features["snapshot_date"] == features["snapshot_date"].max()]
    scores = score_users(features, store["uri"], today["snapshot_date"].iloc[0])
    report = champion_drift(today.sort_values("user_id"), scores["churn_probability"], store["uri"])
    assert "prediction" in report.psi and "activity_trend" in report.psi
    assert report.psi["plan"] < 0.1  # plans are fixed per user in the synthetic data
    shifted = today.sort_values("user_id").assign(events_7d=today["events_7d"].to_numpy() * 5 + 50)
    shifted_report = champion_drift(shifted, None, store["uri"])
    assert "events_7d" in shifted_report.drifting


def test_duplicate_feature_rows_are_rejected(trained, store, marts):
    features = marts["fct_user_features"]
    day = features["snapshot_date"].max()
    doubled = pd.concat([features, features[features["snapshot_date"] == day].head(2)])
    with pytest.raises(ValueError, match="one row per user"):
        score_users(doubled, store["uri"], day)
    assert np.isfinite(trained["v2"].metrics["brier"])


def test_user_scores_stream_day_by_day_into_duckdb(trained, store, marts, tmp_path):
    """Scoring a range writes the same table whether one day or several are scored per
    chunk; each chunk replaces only its own days (a re-run rewrites, never duplicates); reason
    codes only on the range's last day."""
    import duckdb

    from ml.score_table import chunks, write_user_scores

    features = marts["fct_user_features"]
    days = sorted(pd.to_datetime(features["snapshot_date"]).dt.date.unique())[-5:]
    tables = {}
    for chunk_days in (1, 3):
        conn = duckdb.connect(str(tmp_path / f"w{chunk_days}.duckdb"))
        conn.register("src", features)
        conn.execute("create table main.fct_user_features as select * from src")
        for _ in range(2):  # the second run replaces the first
            written = write_user_scores(
                conn, store["uri"], days[0], days[-1], chunk_days=chunk_days, top_reasons=1
            )
        tables[chunk_days] = conn.execute(
            "select * from main.user_scores order by score_date, user_id"
        ).df()
        conn.close()
    expected_rows = int(pd.to_datetime(features["snapshot_date"]).dt.date.isin(days).sum())
    assert written.rows == len(tables[1]) == expected_rows
    assert written.days == (days[-1] - days[0]).days + 1  # calendar days, empty ones too
    pd.testing.assert_frame_equal(tables[1], tables[3])
    assert set(written.latest_scores["score_date"]) == {days[-1]}
    # Reason codes on the range's last day only (what the sync and the report read).
    last = pd.to_datetime(tables[1]["score_date"]).dt.date == days[-1]
    assert tables[1].loc[~last, "churn_reasons"].isna().all()
    assert tables[1].loc[last, "churn_reasons"].notna().all()
    assert chunks(days, 3) == [(days[0], days[2]), (days[3], days[4])]


def test_generic_pyfunc_of_champions_returns_what_duckdb_scoring_writes(trained, store, marts):
    """A classifier champion's pyfunc (what `mlflow.pyfunc.spark_udf` and model servers call)
    returns [P(0), P(1)] per row, P(1) being the probability DuckDB scoring writes; the LTV
    pyfunc returns the value (DuckDB clips it at 0)."""
    import mlflow

    features = marts["fct_user_features"]
    day = features["snapshot_date"].max()
    today = features[features["snapshot_date"] == day].reset_index(drop=True)
    scored = score_users(today, store["uri"], day).set_index("user_id").loc[today["user_id"]]
    mlflow.set_tracking_uri(store["uri"])
    for name, column in ((CHURN_MODEL, "churn_probability"), (LTV_MODEL, "ltv_pred")):
        champion = registry.load_by_alias(name, store["uri"])
        x = prepare_features(today, FeatureSpec.from_dict(champion.meta["feature_spec"]))
        got = np.asarray(mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(x))
        want = scored[column].to_numpy(float)
        if name == CHURN_MODEL:
            assert got.shape == (len(today), 2)
            np.testing.assert_allclose(got[:, 1], want, rtol=1e-9)
        else:
            np.testing.assert_allclose(np.clip(got, 0, None), want, rtol=1e-9)


CAPPED_SCORING = """
import sys
import duckdb
import pandas as pd
from threadpoolctl import threadpool_info
import ml.score_table as score_table

assert "sklearn" not in sys.modules  # the cap must hold although scikit-learn loads later
seen = []
score_with = score_table.score_with


def recording(*args, **kwargs):
    seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp")
    return score_with(*args, **kwargs)


score_table.score_with = recording
conn = duckdb.connect()
conn.execute("create table main.fct_user_features as select * from read_parquet(?)", [sys.argv[2]])
day = pd.Timestamp(sys.argv[3]).date()
score_table.write_user_scores(conn, sys.argv[1], day, day, top_reasons=1, n_threads=1)
print(sorted(set(seen)))
"""


def test_scoring_caps_openmp_even_when_scikit_learn_loads_with_the_champions(
    trained, store, marts, tmp_path
):
    """A fresh process (as a run's): scikit-learn and its OpenMP load with the champions, so
    the one-thread cap must be set after that, or every predict spins a thread per core."""
    import os
    import subprocess
    import sys

    features = marts["fct_user_features"]
    day = str(pd.to_datetime(features["snapshot_date"]).max().date())
    path = tmp_path / "features.parquet"
    features.to_parquet(path)
    done = subprocess.run(
        [sys.executable, "-c", CAPPED_SCORING, store["uri"], str(path), day],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "[1]", done.stdout[-2000:]
