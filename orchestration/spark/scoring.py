"""Scoring in the cluster: the MLflow champion as a Spark UDF (`mlflow.pyfunc.spark_udf`).

A model trained on a sample scores the full customer base where it lives; features are
prepared in Spark exactly as ml.features.prepare_features does for pandas (numerics and
booleans as double, missing categories as their explicit level), so both paths feed the model
the same frame. Reads leave Spark in bounded batches (`iter_batches`), never as one collect.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd

from ml.features import MISSING_CATEGORY, FeatureSpec

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
