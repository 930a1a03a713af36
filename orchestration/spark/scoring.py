"""Scoring in the cluster: the MLflow champion as a Spark UDF (`mlflow.pyfunc.spark_udf`).

A model trained on a sample scores the full customer base where it lives; features are
prepared in Spark exactly as ml.features.prepare_features does for pandas (numerics and
booleans as double, missing categories as their explicit level), so both paths feed the model
the same frame. Reads leave Spark in bounded batches (`iter_batches`), never as one collect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from contracts.marts import FEATURES_TABLE
from contracts.models import KINDS
from ml.features import MISSING_CATEGORY, FeatureSpec
from ml.scoring import Champions
from orchestration.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def prepared_columns(spec: FeatureSpec) -> list[Column]:
    """The model input columns, typed like ml.features.prepare_features."""
    from pyspark.sql import functions as F

    numeric = [F.col(c).cast("double").alias(c) for c in spec.numeric + spec.boolean]
    categorical = [
        F.coalesce(F.col(c).cast("string"), F.lit(MISSING_CATEGORY)).alias(c)
        for c in spec.categorical
    ]
    return numeric + categorical


def predict_column(spark: SparkSession, model_uri: str, spec: FeatureSpec) -> Column:
    """The model's prediction as a column: the positive-class probability for a model logged
    with pyfunc_predict_fn="predict_proba", the prediction itself otherwise."""
    import mlflow
    from pyspark.sql import functions as F

    flavor = mlflow.models.get_model_info(model_uri).flavors.get("python_function", {})
    proba = flavor.get("predict_fn", "predict") == "predict_proba"
    udf = mlflow.pyfunc.spark_udf(
        spark,
        model_uri,
        result_type="array<double>" if proba else "double",
        env_manager="local",  # executors use this environment; no per-UDF install
    )
    prediction = udf(F.struct(*prepared_columns(spec)))
    return F.element_at(prediction, -1) if proba else prediction


def score(
    spark: SparkSession, features: DataFrame, model_uri: str, spec: FeatureSpec, output: str
) -> DataFrame:
    """`features` with the model's prediction in column `output`."""
    missing = [c for c in spec.columns if c not in features.columns]
    if missing:
        raise ValueError(f"feature table lacks column(s) {missing} that {model_uri} was trained on")
    return features.withColumn(output, predict_column(spark, model_uri, spec))


def iter_batches(frame: DataFrame, batch_size: int) -> Iterator[pd.DataFrame]:
    """The rows of `frame` as pandas frames of at most `batch_size` rows, one partition in the
    driver at a time (toLocalIterator), so a large diff never lands in memory at once."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    columns = frame.columns
    rows: list[tuple] = []
    for row in frame.toLocalIterator(prefetchPartitions=False):
        rows.append(tuple(row))
        if len(rows) == batch_size:
            yield pd.DataFrame(rows, columns=columns)
            rows = []
    if rows:
        yield pd.DataFrame(rows, columns=columns)


def champion_scores(
    settings: Settings,
) -> Callable[[Champions, date, date], Callable[[date, date], pd.DataFrame]]:
    """The Spark engine's scoring for ml.score_table.write_user_scores (EngineScores): every
    champion scores main.fct_user_features over the range in Spark, in one job, written as
    Parquet beside the warehouse; each chunk's predictions are then read from those files."""

    def score_range(champions: Champions, first: date, last: date):
        from pyspark.sql import functions as F

        from ml.registry import connect
        from orchestration.spark.session import get_session
        from orchestration.spark.tables import table_files

        # models:/ URIs below resolve in this store (the champions may have come from the
        # registry cache, which does not point MLflow at it)
        connect(settings.mlflow_tracking_uri)
        spark = get_session(settings)
        features = spark.table(f"main.{FEATURES_TABLE}").where(
            F.col("snapshot_date").between(F.lit(first), F.lit(last))
        )
        columns = [F.col("user_id").cast("string").alias("user_id"), F.col("snapshot_date")]
        for kind, champion in zip(KINDS.values(), champions, strict=True):
            if champion is None:
                continue
            uri = f"models:/{champion.loaded.model_name}/{champion.loaded.version}"
            predicted = predict_column(spark, uri, champion.spec)
            if kind.task != "classification":  # revenue is never negative (ml.scoring)
                predicted = F.greatest(predicted, F.lit(0.0))
            columns.append(predicted.alias(kind.score_column))
        folder = settings.spark_dir / "scoring" / "champion_scores"
        features.select(*columns).write.mode("overwrite").parquet(str(folder))
        files = table_files(folder)

        def read_chunk(chunk_first: date, chunk_last: date) -> pd.DataFrame:
            with duckdb.connect() as conn:
                return conn.execute(
                    "select * from read_parquet(?) where snapshot_date between ? and ?",
                    [files, chunk_first, chunk_last],
                ).df()

        return read_chunk

    return score_range
