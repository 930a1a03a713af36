"""A champion trained by segflow (ml.tracking.train_model) scores the same on Spark
(`mlflow.pyfunc.spark_udf`, orchestration.spark.scoring) as on DuckDB (ml.scoring): the
classifier is logged with pyfunc_predict_fn=predict_proba, so the UDF returns probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from support.java import java_major
from support.ml_marts import synthetic_marts
from threadpoolctl import threadpool_limits

from contracts.models import CHURN_MODEL
from ml import registry
from ml.features import FeatureSpec
from ml.scoring import score_users
from ml.tracking import train_model
from orchestration.settings import Settings

pytestmark = pytest.mark.slow

if java_major() < 17:
    pytest.skip("Java 17+ is missing (make java installs it)", allow_module_level=True)


def test_trained_churn_champion_scores_the_same_on_spark_and_duckdb(tmp_path, monkeypatch):
    import mlflow

    from orchestration.spark.scoring import score
    from orchestration.spark.session import get_session

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    marts = synthetic_marts(n_users=300, n_weeks=8, seed=5)
    with threadpool_limits(limits=1):
        train_model("churn", marts["ml_churn_training"], uri, tmp_path / "artifacts")
    features = marts["fct_user_features"]
    day = features["snapshot_date"].max()
    today = features[features["snapshot_date"] == day].reset_index(drop=True)
    duck = score_users(today, uri, day).set_index("user_id")["churn_probability"]
    spec = FeatureSpec.from_dict(registry.load_by_alias(CHURN_MODEL, uri).meta["feature_spec"])

    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_SPARK_MASTER", "local[1]")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    spark = get_session(Settings.from_env(), app_name="segflow-champion-test")
    try:
        frame = spark.createDataFrame(today[["user_id", *spec.columns]].astype(object))
        got = (
            score(spark, frame, f"models:/{CHURN_MODEL}@champion", spec, "p")
            .select("user_id", "p")
            .toPandas()
            .set_index("user_id")["p"]
        )
    finally:
        spark.stop()
        mlflow.set_tracking_uri(previous)
    assert got.between(0, 1).all() and got.nunique() > 10
    np.testing.assert_allclose(got.loc[duck.index].to_numpy(float), duck.to_numpy(float), rtol=1e-6)
