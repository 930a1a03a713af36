"""Model training (weekly, on demand) and daily scoring with the champion models.

Training reads a dbt training set, logs to MLflow and registers a challenger that is promoted
only if it beats the champion on the same holdout. Scoring loads `models:/<name>@champion`.
Models fail alone: a model the data cannot support (no positives, no revenue, too few rows,
an input the estimator rejects) is skipped with its reason (a WARN check on the asset), and
scoring carries on with whatever champions exist.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from contracts.models import CHURN_MODEL, KINDS, registered_name
from ml.drift import champion_drift
from ml.features import FeatureError, InsufficientDataError
from ml.score_table import write_user_scores
from ml.scoring import churn_scores
from orchestration.defs.jobs import TRAINING_GROUP
from orchestration.defs.metadata import preview, scalar, table
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, partition_dates, single_run
from orchestration.defs.resources import MLflowResource, WarehouseResource
from orchestration.model_inputs import label_definition, model_features
from orchestration.settings import Settings
from orchestration.sources.mappings import declared_attributes

DRIFT_THRESHOLD = Settings.from_env().drift_psi_threshold
# The drift reference: the same population this many days earlier (a week: same weekday, so
# weekly seasonality is not drift, and ages have moved by a week only).
DRIFT_LOOKBACK_DAYS = 7


def _mlflow_ui_link(experiment_id: str, run_id: str) -> str:
    base = Settings.from_env().mlflow_ui_url
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def _skipped(kind: str, reason: str, rows: int) -> list:
    check = dg.AssetCheckResult(
        check_name="model_trained",
        asset_key=f"{kind}_model",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"reason": reason},
    )
    return [dg.MaterializeResult(metadata={"status": f"skipped: {reason}", "rows": rows}), check]


def _training_asset(kind: str, training_table: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{kind}_model",
        group_name=TRAINING_GROUP,
        deps=[training_table],
        kinds={"mlflow", "scikitlearn"},
        pool=DUCKDB_POOL,
        check_specs=[
            dg.AssetCheckSpec(
                "model_trained",
                asset=f"{kind}_model",
                description="Warns when the model was skipped (the data cannot support it "
                "today); the reason is in the check metadata. Scoring carries on.",
            )
        ],
        description=f"Train the {kind} model on `{training_table}`, log it to MLflow and register "
        f"`{registered_name(kind)}`: the best of its candidates on the holdout, refitted on "
        "every labelled snapshot (alias challenger; champion unless the current one scores "
        "better on the same holdout). Skipped "
        "with a reason when the data cannot support it.",
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource
    ):
        with warehouse.connect() as conn:
            # In a fixed row order: the split, early stopping and calibration folds follow row
            # order, so the same rows stored in another order (Spark's Parquet) gave another model.
            training = conn.execute(
                f'select * from main."{training_table}" order by user_id, snapshot_date'
            ).df()
        settings = Settings.from_env()
        label = label_definition(kind, settings)
        if training.empty:
            reason = (
                f"{training_table} is empty: the data does not yet cover a "
                f"{label.horizon_days}-day label window after a weekly snapshot "
                f"({label.horizon_setting or 'the horizon'}: load more history or shorten it)"
            )
            context.log.warning(f"{kind} model skipped: {reason}")
            yield from _skipped(kind, reason, 0)
            return
        # Imported here: training (and its matplotlib plots) runs in the weekly job only; the
        # daily job's definitions load does not pay for it.
        from ml.tracking import train_model

        try:
            result = train_model(
                kind,
                training,
                mlflow.tracking_uri,
                Path(mlflow.artifact_root),
                features=model_features(kind, attributes=declared_attributes(settings)),
                label=label,
            )
        except (InsufficientDataError, FeatureError) as exc:
            # The data cannot support this model today (too few rows or positives, no
            # revenue, a declared feature missing). The current champion (if any) keeps
            # scoring; without one, its score columns stay null. Other models carry on.
            context.log.warning(f"{kind} model skipped: {exc}")
            yield from _skipped(kind, str(exc), len(training))
            return
        for warning in result.warnings:
            context.log.warning(warning)
        metrics = {name: scalar(round(value, 4)) for name, value in result.metrics.items()}
        baseline = {
            name: scalar(round(value, 4)) for name, value in result.baseline_metrics.items()
        }
        metadata = {
            "model": result.model_name,
            "version": result.version,
            "champion_version": result.champion_version,
            "promoted": result.decision.promoted,
            "decision": result.decision.reason,
            "metrics": dg.MetadataValue.json(metrics),
            "baseline_metrics": dg.MetadataValue.json(baseline),
            "data_window": dg.MetadataValue.json({k: scalar(v) for k, v in result.window.items()}),
            "top_features": table(
                result.feature_importance.head(15)
                .rename("importance")
                .reset_index()
                .rename(columns={"index": "feature"})
            ),
            "mlflow_run": dg.MetadataValue.url(
                _mlflow_ui_link(result.experiment_id, result.run_id)
            ),
            "model_uri": result.model_uri,
        }
        metadata.update({f"metric/{k}": v for k, v in metrics.items()})
        metadata["label_metrics"] = dg.MetadataValue.json(
            {k: scalar(round(v, 4)) for k, v in result.label_metrics.items()}
        )
        metadata["candidates"] = dg.MetadataValue.json(
            {
                name: {k: scalar(round(v, 4)) for k, v in m.items()}
                for name, m in result.candidate_metrics.items()
            }
        )
        metadata["label"] = dg.MetadataValue.json({"column": KINDS[kind].label, **label.params()})
        metadata["champion_candidate"] = result.winner
        metadata["champion_trails"] = ", ".join(result.decision.trailing) or "none"
        metadata["refit_window"] = dg.MetadataValue.json(
            {k: scalar(v) for k, v in result.refit_window.items()}
        )
        metadata["dropped_features"] = dg.MetadataValue.json(result.dropped_features)
        yield dg.MaterializeResult(metadata=metadata)
        yield dg.AssetCheckResult(
            check_name="model_trained",
            asset_key=f"{kind}_model",
            passed=True,
            metadata={"version": result.version, "promoted": result.decision.promoted},
        )

    return _asset


training_assets = [_training_asset(kind, k.training_table) for kind, k in KINDS.items()]


@dg.asset(
    group_name="scoring",
    deps=["fct_user_features", *(a.key for a in training_assets)],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    pool=DUCKDB_POOL,
    kinds={"mlflow", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "feature_drift",
            asset="user_scores",
            description="PSI of today's not-churned customers' features and churn scores vs "
            "the same population a week earlier (scored by the same champion); warns above "
            "SEGFLOW_DRIFT_PSI_THRESHOLD.",
        ),
    ],
    description="Churn, LTV and conversion scores with bands for every active user on each day, "
    "from the champion models; top reason codes for the run's last day (what the sync and the "
    "report read; a backfill's earlier days keep none).",
)
def user_scores(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource
):
    dates = partition_dates(context)
    latest_day: date = dates[-1]
    # Streams: one day at a time is read, scored and written (ml.score_table). The drift
    # check's reference day is read meanwhile on a cursor of its own (DuckDB reads outside
    # the GIL while the champions load and score).
    with warehouse.connect() as conn, ThreadPoolExecutor(max_workers=1) as reader:
        reading = reader.submit(_reference_features, conn, latest_day)
        written = write_user_scores(
            conn,
            mlflow.tracking_uri,
            dates[0],
            dates[-1],
            engine_scores=_engine_scores(),
            workers=Settings.from_env().scoring_threads,
        )
        reference = reading.result()
    absent = written.missing
    if absent:
        context.log.warning(
            f"no champion for {', '.join(absent)}: their score columns stay null today; "
            "segments whose rules need them are reported as not evaluated"
        )
    latest_features, latest_scores = written.latest_features, written.latest_scores
    # Drift on today's not-churned customers, each with their own score (scores are sorted
    # by user_id, features are not: align by user, never by position).
    latest = latest_features.merge(
        latest_scores[["user_id", "churn_probability"]], on="user_id", how="inner"
    )
    alive = (
        ~latest["is_churned"].fillna(False).astype(bool).to_numpy()
        if "is_churned" in latest.columns
        else np.ones(len(latest), dtype=bool)
    )
    drift = (
        _drift(
            latest.loc[alive].drop(columns="churn_probability"),
            latest.loc[alive, "churn_probability"].to_numpy(),
            latest_day,
            reference,
            mlflow,
        )
        if alive.any() and CHURN_MODEL not in absent
        else None
    )
    bands = latest_scores.groupby("churn_band").size().rename("users").reset_index()
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": written.rows,
            "days_scored": written.days,
            "reason_codes_day": str(latest_day),
            "users_latest_day": len(latest_scores),
            "churn_bands_latest_day": table(bands),
            "mean_churn_probability": scalar(
                round(float(latest_scores["churn_probability"].mean()), 4)
            )
            if len(latest_scores)
            else "n/a",
            "model_versions": dg.MetadataValue.json(
                {
                    c: str(latest_scores[c].iloc[0])
                    for c in latest_scores.columns
                    if c.endswith("_model_version") and len(latest_scores)
                }
            ),
            "preview": preview(latest_scores),
        }
    )
    yield dg.AssetCheckResult(
        check_name="feature_drift",
        asset_key="user_scores",
        passed=drift is None or drift.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "threshold": DRIFT_THRESHOLD,
            "noise_floor": scalar(round(drift.noise_floor, 4)) if drift else "n/a",
            "max_psi": scalar(round(drift.max_psi, 4)) if drift else "n/a",
            "drifting_features": ", ".join(drift.drifting) if drift and drift.drifting else "none",
            "psi_by_feature": preview(drift.table(), rows=40) if drift else "n/a",
        },
    )


def _engine_scores():
    """The Spark engine scores in Spark (the champions as `mlflow.pyfunc.spark_udf`); DuckDB
    scores in this process."""
    settings = Settings.from_env()
    if settings.engine != "spark":
        return None
    from orchestration.spark.scoring import champion_scores

    return champion_scores(settings)


def _reference_features(conn, day: date) -> pd.DataFrame:
    """The drift check's reference: the not-churned customers' features a week before `day`
    (the same weekday), read on a cursor of `conn` (usable beside it on another thread)."""
    cursor = conn.cursor()
    try:
        return cursor.execute(
            "select * from main.fct_user_features where snapshot_date = ?"
            " and not coalesce(is_churned, false)",
            [day - timedelta(days=DRIFT_LOOKBACK_DAYS)],
        ).df()
    finally:
        cursor.close()


def _drift(
    current: pd.DataFrame,
    current_scores: np.ndarray,
    day: date,
    reference: pd.DataFrame,
    mlflow: MLflowResource,
):
    """Today's not-churned customers against the same population a week earlier (same weekday),
    both scored by today's champion (ml.drift.champion_drift says why)."""
    reference_day = day - timedelta(days=DRIFT_LOOKBACK_DAYS)
    workers = Settings.from_env().scoring_threads
    reference_scores = (
        churn_scores(reference, mlflow.tracking_uri, reference_day, workers=workers)
        if len(reference)
        else None
    )
    return champion_drift(
        current,
        current_scores,
        mlflow.tracking_uri,
        threshold=DRIFT_THRESHOLD,
        reference_features=reference,
        reference_scores=reference_scores,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[*training_assets, user_scores])
