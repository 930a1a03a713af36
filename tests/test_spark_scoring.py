"""Scoring on Spark: an MLflow model as `mlflow.pyfunc.spark_udf` gives the same numbers as
scikit-learn on the pandas frame (ml.features.prepare_features), and results leave Spark in
bounded batches."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from support.java import java_major

from ml.features import FeatureSpec, prepare_features
from orchestration.settings import Settings

pytestmark = pytest.mark.slow

if java_major() < 17:
    pytest.skip("Java 17+ is missing (make java installs it)", allow_module_level=True)

SPEC = FeatureSpec(
    numeric=("events_28d", "revenue"), boolean=("is_paid",), categorical=("plan",), reference={}
)


def _features(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n)],
            "events_28d": rng.integers(0, 60, n),
            "revenue": np.round(rng.gamma(2.0, 40.0, n), 2),
            "is_paid": rng.random(n) < 0.3,
            "plan": rng.choice(["free", "pro", None], n),
        }
    )


def _log(model, name: str, x: pd.DataFrame, y: np.ndarray, predict_fn: str) -> str:
    model.fit(x, y)
    info = mlflow.sklearn.log_model(model, name=name, pyfunc_predict_fn=predict_fn)
    return info.model_uri


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("spark_scoring")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEGFLOW_HOME", str(home))
    mp.setenv("SEGFLOW_SPARK_MASTER", "local[2]")
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    # artifacts under the test's folder, not ./mlruns (the default artifact root of a sqlite store)
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("spark-scoring", artifact_location=str(home / "art"))
    )
    from orchestration.spark.session import get_session

    session = get_session(Settings.from_env(), app_name="segflow-test")
    yield session
    session.stop()
    mlflow.set_tracking_uri(previous_uri)
    mp.undo()


def test_spark_udf_scores_equal_sklearn(spark) -> None:
    from orchestration.spark.scoring import iter_batches, score

    frame = _features()
    x = prepare_features(frame, SPEC)
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), list(SPEC.categorical))],
        remainder="passthrough",
    )
    churn = make_pipeline(encode, LogisticRegression(max_iter=500))
    churn_uri = _log(churn, "churn", x, (frame["events_28d"] < 20).to_numpy(), "predict_proba")
    ltv = make_pipeline(encode, Ridge())
    ltv_uri = _log(ltv, "ltv", x, frame["revenue"].to_numpy() * 3, "predict")

    features = spark.createDataFrame(frame.astype({"plan": object}))
    scored = score(spark, features, churn_uri, SPEC, "churn_probability")
    scored = score(spark, scored, ltv_uri, SPEC, "ltv_pred")
    batches = list(iter_batches(scored.select("user_id", "churn_probability", "ltv_pred"), 150))
    assert [len(b) for b in batches] == [150, 150, 100]
    got = pd.concat(batches).set_index("user_id").loc[frame["user_id"]]
    np.testing.assert_allclose(got["churn_probability"], churn.predict_proba(x)[:, 1], rtol=1e-9)
    np.testing.assert_allclose(got["ltv_pred"], ltv.predict(x), rtol=1e-9)
    assert got["churn_probability"].between(0, 1).all() and got["churn_probability"].nunique() > 10

    with pytest.raises(ValueError, match="lacks column"):
        score(spark, features.drop("plan"), churn_uri, SPEC, "p")


RULES = (
    "events_28d >= 20 and plan in ['pro']",
    "not is_paid or revenue / 2 > 40.5",
    "plan is None or events_28d % 7 == 3",
    "10 < events_28d <= 30 and plan != 'free'",
    "-revenue < -100 and plan not in ['free']",
)


def test_rules_select_the_same_users_on_spark_and_duckdb(spark) -> None:
    """One expression tree, two dialects: the same members on both engines."""
    import duckdb

    from orchestration.segments.rules import compile_rule

    frame = _features()
    columns = {"events_28d": "BIGINT", "revenue": "DOUBLE", "is_paid": "BOOLEAN", "plan": "VARCHAR"}
    spark.createDataFrame(frame.astype({"plan": object})).createOrReplaceTempView("features")
    conn = duckdb.connect()
    conn.register("features", frame)
    for text in RULES:
        rule = compile_rule(text, columns)
        on_duckdb = conn.execute(
            f"select user_id from features where {rule.sql} order by 1", rule.params
        ).fetchall()
        on_spark = spark.sql(
            f"select user_id from features where {rule.sql_for('spark')} order by 1",
            args=rule.params,
        ).collect()
        assert [r[0] for r in on_duckdb] == [r[0] for r in on_spark], text
        assert 0 < len(on_duckdb) < len(frame), text
