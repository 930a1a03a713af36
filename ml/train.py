"""Train one model (churn, LTV or conversion) from its dbt training mart, evaluate it on the
latest snapshot against a baseline, log everything to MLflow, register it as `challenger`
and promote it to `champion` if it beats the current champion on the same holdout.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.inspection import permutation_importance
from threadpoolctl import threadpool_limits

from ml import plots, registry
from ml.estimators import (
    GroupMeanBaseline,
    calibrated_classifier,
    logistic_baseline,
    revenue_regressor,
)
from ml.feature_sets import declared_features
from ml.features import (
    FeatureError,
    FeatureSpec,
    InsufficientDataError,
    declared_feature_spec,
    prepare_features,
    screen_degenerate,
    with_reference,
)
from ml.metrics import classification_metrics, regression_metrics
from ml.promotion import PromotionDecision, PromotionPolicy, decide
from ml.splits import TimeSplit, time_split


@dataclass(frozen=True)
class ModelKind:
    kind: str
    registered_name: str
    label: str
    task: str  # "classification" | "regression"
    horizon_days: int
    primary_metric: str
    calibration_metric: str
    default_policy: PromotionPolicy


KINDS: dict[str, ModelKind] = {
    "churn": ModelKind(
        "churn",
        "segflow-churn",
        "churned_28d",
        "classification",
        28,
        "roc_auc",
        "brier",
        PromotionPolicy(0.002, 0.005),
    ),
    "ltv": ModelKind(
        "ltv",
        "segflow-ltv",
        "revenue_next_90d",
        "regression",
        90,
        "normalized_gini",
        "calibration_error",
        PromotionPolicy(0.005, 0.05),
    ),
    "conversion": ModelKind(
        "conversion",
        "segflow-conversion",
        "converted_28d",
        "classification",
        28,
        "roc_auc",
        "brier",
        PromotionPolicy(0.002, 0.005),
    ),
}

# Probability bands: < 0.2 low, < 0.5 medium, else high. Stored with every model version.
PROBABILITY_BAND_THRESHOLDS = (0.2, 0.5)
BAND_LABELS = ("low", "medium", "high")
# Revenue bands are quantiles of the holdout predictions: bottom half low, top decile high.
REVENUE_BAND_QUANTILES = (0.5, 0.9)
BASELINE_GROUP_COLUMN = "plan"
MIN_TRAIN_ROWS = 100
MIN_HOLDOUT_ROWS = 30
# A classifier needs this many rows of each class in training (3-fold calibration and the
# early-stopping split each need several of the rarer class).
MIN_CLASS_ROWS = 10
# Numeric columns with fewer non-null training values are dropped (they can be empty in a fold).
MIN_NON_NULL_VALUES = 20
# Reason codes consider this many of the model's most important features (one re-predict each).
REASON_FEATURES = 12
# A churn label whose positives are mostly already inactive at the snapshot is flagged.
ALREADY_GONE_WARN_SHARE = 0.5


class ModelSkipped(InsufficientDataError):
    """The data cannot support this model today; the message says model, rows, positives and
    what it needs. The orchestration layer skips the model and the others carry on."""


@dataclass(frozen=True)
class LabelDefinition:
    """How the training mart's label was built, logged with every run.

    `definition`: e.g. "inactivity" or "cancellation"; `horizon_days` replaces the model
    kind's default horizon (also the purge gap of the time split); `inactive_days`: the
    inactivity threshold used to measure how many positives were already inactive."""

    definition: str
    horizon_days: int
    inactive_days: int | None = None
    description: str = ""

    def params(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "label_definition": self.definition,
            "label_horizon_days": self.horizon_days,
        }
        if self.inactive_days is not None:
            out["label_inactive_days"] = self.inactive_days
        if self.description:
            out["label_description"] = self.description[:500]
        return out


@dataclass
class TrainResult:
    """Everything the orchestration layer shows about one training run."""

    kind: str
    model_name: str
    version: str
    run_id: str
    experiment_id: str
    model_uri: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    decision: PromotionDecision
    window: dict[str, str | int]
    bands: dict
    plot_paths: dict[str, Path]
    feature_importance: pd.Series
    feature_columns: list[str]
    holdout_predictions: pd.DataFrame  # user_id, snapshot_date, label, prediction, baseline
    warnings: list[str] = field(default_factory=list)
    dropped_features: dict[str, str] = field(default_factory=dict)
    label_metrics: dict[str, float] = field(default_factory=dict)
    clv_baseline_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def champion_version(self) -> str:
        return self.decision.champion_version


def model_kind(kind: str) -> ModelKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}: expected one of {sorted(KINDS)}") from None


def _labels(df: pd.DataFrame, spec: ModelKind) -> tuple[pd.DataFrame, list[str]]:
    """Keep rows with a label; count (never silently drop) those without one."""
    if spec.label not in df.columns:
        raise FeatureError(
            f"{spec.kind} training table lacks label column {spec.label!r}; "
            f"columns: {sorted(df.columns)}"
        )
    missing = df[spec.label].isna()
    notes = []
    if missing.any():
        notes.append(f"{int(missing.sum())} rows without {spec.label} excluded from training")
    return df.loc[~missing].reset_index(drop=True), notes


def _target(df: pd.DataFrame, spec: ModelKind) -> np.ndarray:
    values = pd.to_numeric(df[spec.label], errors="coerce").to_numpy(dtype=float)
    if spec.task == "classification":
        return (values > 0).astype(int)
    return np.clip(values, 0.0, None)  # refunds can make a window negative; revenue floors at 0


def _evaluate(spec: ModelKind, y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    if spec.task == "classification":
        return classification_metrics(y, prediction)
    metrics = regression_metrics(y, prediction)
    ratio = metrics["calibration_ratio"]
    metrics["calibration_error"] = abs(ratio - 1.0) if not math.isnan(ratio) else math.nan
    return metrics


def _predict(spec: ModelKind, model, X: pd.DataFrame) -> np.ndarray:
    if spec.task == "classification":
        return model.predict_proba(X)[:, 1]
    return np.clip(model.predict(X), 0.0, None)


def _bands(spec: ModelKind, holdout_prediction: np.ndarray) -> dict:
    if spec.task == "classification":
        thresholds = list(PROBABILITY_BAND_THRESHOLDS)
        rule = "probability thresholds"
    else:
        thresholds = [float(np.quantile(holdout_prediction, q)) for q in REVENUE_BAND_QUANTILES]
        rule = f"holdout prediction quantiles {list(REVENUE_BAND_QUANTILES)}"
    return {"thresholds": thresholds, "labels": list(BAND_LABELS), "rule": rule}


def _importance(spec: ModelKind, model, X: pd.DataFrame, y: np.ndarray) -> pd.Series:
    sample = X.sample(n=min(len(X), 2000), random_state=0)
    y_sample = y[X.index.get_indexer(sample.index)]
    if spec.task == "classification":
        scoring = "roc_auc" if 0 < y_sample.sum() < len(y_sample) else "neg_brier_score"
    else:
        scoring = "neg_mean_poisson_deviance" if y_sample.sum() > 0 else "neg_mean_absolute_error"
    result = permutation_importance(
        model, sample, y_sample, scoring=scoring, n_repeats=3, random_state=0
    )
    return pd.Series(result.importances_mean, index=X.columns).sort_values(ascending=False)


def _reason_features(importance: pd.Series, fspec: FeatureSpec) -> list[str]:
    """Reason-code candidates: the REASON_FEATURES most important features on the holdout
    (positive permutation importance), in the spec's order; all features when none help."""
    useful = importance[importance > 0].head(REASON_FEATURES).index
    return [c for c in fspec.columns if c in set(useful)] or list(fspec.columns)


def _plots(
    spec: ModelKind,
    y: np.ndarray,
    model_pred: np.ndarray,
    base_pred: np.ndarray,
    importance: pd.Series,
    folder: Path,
) -> dict[str, Path]:
    curves = {"model": model_pred, "baseline": base_pred}
    paths = {
        "feature_importance": plots.importance_plot(importance, folder / "feature_importance.png")
    }
    if spec.task == "classification":
        paths["roc"] = plots.roc_plot(y, curves, folder / "roc.png")
        paths["precision_recall"] = plots.precision_recall_plot(
            y, curves, folder / "precision_recall.png"
        )
        paths["calibration"] = plots.calibration_plot(y, curves, folder / "calibration.png")
        paths["cumulative_gains"] = plots.gains_plot(
            y, curves, folder / "cumulative_gains.png", "positives"
        )
    else:
        paths["calibration"] = plots.calibration_by_decile_plot(
            y, model_pred, folder / "calibration.png"
        )
        paths["cumulative_gains"] = plots.gains_plot(
            y, curves, folder / "cumulative_gains.png", "revenue"
        )
    return paths


def _fit_baseline(spec: ModelKind, fspec: FeatureSpec, X: pd.DataFrame, y: np.ndarray):
    if spec.task == "regression":
        return GroupMeanBaseline(BASELINE_GROUP_COLUMN).fit(X, y)
    return logistic_baseline(fspec, len(X)).fit(X, y)


def _champion_metrics(
    spec: ModelKind, tracking_uri: str, holdout: pd.DataFrame, y: np.ndarray
) -> tuple[str | None, dict[str, float] | None, str | None]:
    """Re-score the current champion on this run's holdout so both face the same data."""
    client = registry.connect(tracking_uri)
    current = registry.version_by_alias(client, spec.registered_name, registry.CHAMPION)
    if current is None:
        return None, None, None
    try:
        champion = registry.load_by_alias(spec.registered_name, tracking_uri)
        champion_spec = FeatureSpec.from_dict(champion.meta["feature_spec"])
        X = prepare_features(holdout, champion_spec)
        return str(current.version), _evaluate(spec, y, _predict(spec, champion.model, X)), None
    except (LookupError, ValueError) as exc:
        return str(current.version), None, f"{type(exc).__name__}: {exc}"


def train_model(
    kind: str,
    training_df: pd.DataFrame,
    tracking_uri: str,
    artifact_root: Path | None = None,
    *,
    features: tuple[str, ...] | list[str] | None = None,
    label: LabelDefinition | None = None,
    holdout_date: date | None = None,
    policy: PromotionPolicy | None = None,
    max_train_rows: int | None = 400_000,
    reference_rows: int = 5000,
    output_dir: Path | None = None,
    n_threads: int | None = 1,
) -> TrainResult:
    """Train, evaluate, log, register and (maybe) promote one model; see module docstring.

    `training_df` is the dbt mart (`ml_churn_training`, `ml_ltv_training` or
    `ml_conversion_training`). `features` are the declared input columns (default:
    `ml.feature_sets.declared_features(kind)` without product-specific families); every one
    must be in the table, and degenerate ones are dropped and logged. `label` describes how
    the label was built (logged; its horizon sets the purge gap). Training rows above
    `max_train_rows` are sampled (seeded). Plots are written to `output_dir` (default: a new
    temp folder) and logged under `plots/`. `n_threads` caps OpenMP/BLAS threads (None = all
    cores). Raises `ModelSkipped` when the data cannot support the model (too few rows or
    positives, no revenue, an estimator rejecting the data).
    """
    with threadpool_limits(limits=n_threads):
        return _train(
            kind,
            training_df,
            tracking_uri,
            artifact_root,
            holdout_date,
            policy,
            max_train_rows,
            reference_rows,
            output_dir,
            tuple(features) if features is not None else declared_features(kind),
            label,
        )


def _class_counts(spec: ModelKind, y: np.ndarray) -> tuple[int, int]:
    positives = int((y > 0).sum())
    return positives, len(y) - positives


def _require_trainable(spec: ModelKind, y: np.ndarray, window: str) -> None:
    """Skip (with the numbers) when the labels cannot support a fit."""
    if spec.task == "classification":
        positives, negatives = _class_counts(spec, y)
        if min(positives, negatives) < MIN_CLASS_ROWS:
            raise ModelSkipped(
                f"{spec.kind}: {len(y)} training rows ({window}) with {positives} positive and "
                f"{negatives} negative {spec.label}; need at least {MIN_CLASS_ROWS} of each class"
            )
    elif not np.nansum(y) > 0:
        raise ModelSkipped(
            f"{spec.kind}: {len(y)} training rows ({window}) and no revenue in {spec.label} "
            "(no paid invoices in the label windows); an LTV model needs some revenue"
        )


def _label_metrics(
    spec: ModelKind,
    label: LabelDefinition | None,
    holdout: pd.DataFrame,
    y: np.ndarray,
    train_y: np.ndarray,
) -> tuple[dict[str, float], list[str]]:
    """Base rates and, for churn, the share of positives already inactive at the snapshot."""
    if spec.task != "classification":
        return {"train_mean_label": float(np.mean(train_y)) if len(train_y) else math.nan}, []
    out = {
        "train_base_rate": float(np.mean(train_y)) if len(train_y) else math.nan,
        "holdout_base_rate": float(np.mean(y)) if len(y) else math.nan,
    }
    notes: list[str] = []
    inactive_days = label.inactive_days if label and label.inactive_days else spec.horizon_days
    if spec.kind == "churn" and "days_since_last_active" in holdout.columns and y.sum() > 0:
        quiet = pd.to_numeric(holdout["days_since_last_active"], errors="coerce").to_numpy(float)
        already = np.nan_to_num(quiet, nan=np.inf) >= inactive_days
        share = float(already[y > 0].mean())
        out["positives_already_inactive_share"] = share
        if share > ALREADY_GONE_WARN_SHARE:
            notes.append(
                f"churn label: {share:.0%} of holdout positives were already inactive for "
                f"{inactive_days}+ days at the snapshot; the label mostly marks customers "
                "already gone"
            )
    return out, notes


def _fit(spec: ModelKind, fspec: FeatureSpec, X: pd.DataFrame, y: np.ndarray, window: str):
    """Fit the model; an estimator rejecting the data becomes a skip naming the model."""
    estimator = (
        calibrated_classifier(fspec, len(X))
        if spec.task == "classification"
        else revenue_regressor(fspec, len(X))
    )
    try:
        return estimator.fit(X, y)
    except ValueError as exc:
        raise ModelSkipped(
            f"{spec.kind}: the estimator rejected {len(X)} training rows ({window}) with "
            f"features {list(fspec.columns)}: {exc}"
        ) from exc


def _train(
    kind: str,
    training_df: pd.DataFrame,
    tracking_uri: str,
    artifact_root: Path | None,
    holdout_date: date | None,
    policy: PromotionPolicy | None,
    max_train_rows: int | None,
    reference_rows: int,
    output_dir: Path | None,
    features: tuple[str, ...],
    label: LabelDefinition | None,
) -> TrainResult:
    spec = model_kind(kind)
    if label is not None:
        spec = ModelKind(
            spec.kind,
            spec.registered_name,
            spec.label,
            spec.task,
            label.horizon_days,
            spec.primary_metric,
            spec.calibration_metric,
            spec.default_policy,
        )
    policy = policy or spec.default_policy
    if training_df.empty:
        raise ModelSkipped(
            f"{spec.kind}: the training table is empty; the data does not yet "
            f"cover a {spec.horizon_days}-day label window"
        )
    labelled, warnings = _labels(training_df, spec)
    if labelled.empty:
        raise ModelSkipped(f"{spec.kind}: no row has a {spec.label} label yet")
    try:
        split: TimeSplit = time_split(labelled, spec.horizon_days, holdout_date)
    except FeatureError as exc:
        raise ModelSkipped(f"{spec.kind}: {exc}") from exc
    warnings += split.warnings
    train = split.train
    if max_train_rows and len(train) > max_train_rows:
        warnings.append(f"sampled {max_train_rows} of {len(train)} training rows")
        train = train.sample(n=max_train_rows, random_state=0).reset_index(drop=True)

    window = f"snapshots {split.train_min_date}..{split.train_max_date}"
    if len(train) < MIN_TRAIN_ROWS or len(split.holdout) < MIN_HOLDOUT_ROWS:
        raise ModelSkipped(
            f"{spec.kind}: {len(train)} training rows ({window}) and {len(split.holdout)} "
            f"holdout rows; need at least {MIN_TRAIN_ROWS} and {MIN_HOLDOUT_ROWS}. The data "
            f"does not yet cover enough {spec.horizon_days}-day label windows."
        )
    y_train, y_hold = _target(train, spec), _target(split.holdout, spec)
    _require_trainable(spec, y_train, window)
    declared = declared_feature_spec(train, features)
    fspec, dropped = screen_degenerate(train, declared, MIN_NON_NULL_VALUES)
    for name, reason in dropped.items():
        warnings.append(f"feature {name} dropped: {reason}")
    if not fspec.columns:
        raise ModelSkipped(
            f"{spec.kind}: every declared feature is degenerate on {len(train)} "
            f"training rows ({window}): {dropped}"
        )
    fspec = with_reference(train, fspec)
    X_train = prepare_features(train, fspec)
    X_hold = prepare_features(split.holdout, fspec)

    model = _fit(spec, fspec, X_train, y_train, window)
    baseline = _fit_baseline(spec, fspec, X_train, y_train)
    model_pred = _predict(spec, model, X_hold)
    base_pred = _predict(spec, baseline, X_hold)
    metrics = _evaluate(spec, y_hold, model_pred)
    baseline_metrics = _evaluate(spec, y_hold, base_pred)
    label_metrics, label_notes = _label_metrics(spec, label, split.holdout, y_hold, y_train)
    warnings += label_notes
    inactive_days = label.inactive_days if label and label.definition == "inactivity" else None
    clv_metrics = _clv_baseline(spec, train, split.holdout, y_hold, warnings, inactive_days)
    bands = _bands(spec, model_pred)
    importance = _importance(spec, model, X_hold, y_hold)
    folder = Path(output_dir or tempfile.mkdtemp(prefix=f"segflow-{kind}-"))
    folder.mkdir(parents=True, exist_ok=True)
    plot_paths = _plots(spec, y_hold, model_pred, base_pred, importance, folder)

    reference = X_train.sample(n=min(reference_rows, len(X_train)), random_state=0)
    reference = reference.assign(prediction=_predict(spec, model, reference))
    meta = {
        "kind": spec.kind,
        "label": spec.label,
        "label_definition": label.params() if label else {"label_horizon_days": spec.horizon_days},
        "task": spec.task,
        "feature_spec": fspec.to_dict(),
        "declared_features": list(features),
        "dropped_features": dropped,
        "bands": bands,
        "reason_features": _reason_features(importance, fspec),
        "holdout_snapshot": split.holdout_date.isoformat(),
        "population": "rows of the training mart; churn: customers not churned at the "
        "snapshot; conversion: users not on a paid plan",
    }

    champion_version, champion_metrics, champion_error = _champion_metrics(
        spec, tracking_uri, split.holdout, y_hold
    )

    client = registry.connect(tracking_uri)
    experiment_id = registry.ensure_experiment(client, spec.registered_name, artifact_root)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{kind}-{split.holdout_date.isoformat()}"
    ) as run:
        mlflow.log_params(
            {
                **split.window_params(),
                "label": spec.label,
                "label_horizon_days": spec.horizon_days,
                **(label.params() if label else {}),
                "rows_used_for_training": len(train),
                "n_features": len(fspec.columns),
                "n_declared_features": len(features),
                "dropped_features": (", ".join(f"{k}: {v}" for k, v in dropped.items()) or "none")[
                    :6000
                ],
                "numeric_features": ",".join(fspec.numeric + fspec.boolean)[:6000],
                "categorical_features": ",".join(fspec.categorical)[:6000],
                "estimator": type(model.named_steps["model"]).__name__,
                "baseline": type(baseline).__name__
                if spec.task == "regression"
                else "LogisticRegression",
                "min_improvement": policy.min_improvement,
                "calibration_tolerance": policy.calibration_tolerance,
                "band_thresholds": ",".join(f"{t:.6g}" for t in bands["thresholds"]),
            }
        )
        mlflow.log_metrics(_finite(metrics))
        mlflow.log_metrics(_finite({f"baseline_{k}": v for k, v in baseline_metrics.items()}))
        mlflow.log_metrics(_finite(_lift(metrics, baseline_metrics)))
        mlflow.log_metrics(_finite({f"label_{k}": v for k, v in label_metrics.items()}))
        mlflow.log_metrics(_finite({f"clv_baseline_{k}": v for k, v in clv_metrics.items()}))
        mlflow.log_metrics(_finite(_lift(metrics, clv_metrics, "lift_over_clv_")))
        mlflow.set_tags(
            {
                "segflow.kind": kind,
                "segflow.warnings": " | ".join(warnings)[:4000],
                "segflow.label_flag": "; ".join(label_notes)[:4000] or "ok",
            }
        )
        for path in plot_paths.values():
            mlflow.log_artifact(str(path), artifact_path="plots")
        registry.log_json_artifact(
            {
                **meta,
                "metrics": metrics,
                "baseline_metrics": baseline_metrics,
                "label_metrics": label_metrics,
                "clv_baseline_metrics": clv_metrics,
                "feature_importance": importance.to_dict(),
            },
            registry.META_ARTIFACT,
        )
        registry.log_reference_sample(reference)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_hold.head(200), model_pred[:200]),
            input_example=X_train.head(5),
            registered_model_name=spec.registered_name,
            metadata={registry.META_KEY: meta},
            pip_requirements=registry.pip_requirements(),
            skops_trusted_types=registry.skops_trusted_types(model),
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(spec.registered_name, registry.CHALLENGER, version)
        decision = decide(
            policy,
            spec.primary_metric,
            spec.calibration_metric,
            metrics,
            champion_metrics,
            version,
            champion_version,
            champion_error,
        )
        if decision.promoted:
            client.set_registered_model_alias(spec.registered_name, registry.CHAMPION, version)
        mlflow.set_tags(decision.as_tags())
        mlflow.log_metrics(_finite(decision.as_metrics()))
        for key, value in decision.as_tags().items():
            client.set_model_version_tag(spec.registered_name, version, key, value)

    return TrainResult(
        kind=kind,
        model_name=spec.registered_name,
        version=version,
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=f"models:/{spec.registered_name}/{version}",
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        decision=decision,
        window=split.window_params(),
        bands=bands,
        plot_paths=plot_paths,
        feature_importance=importance,
        feature_columns=list(fspec.columns),
        holdout_predictions=pd.DataFrame(
            {
                "user_id": split.holdout["user_id"].to_numpy()
                if "user_id" in split.holdout
                else np.arange(len(y_hold)),
                "snapshot_date": split.holdout_date,
                "label": y_hold,
                "prediction": model_pred,
                "baseline_prediction": base_pred,
            }
        ),
        warnings=warnings,
        dropped_features=dropped,
        label_metrics=label_metrics,
        clv_baseline_metrics=clv_metrics,
    )


def _clv_baseline(
    spec: ModelKind,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    y: np.ndarray,
    warnings: list[str],
    inactive_days: int | None = None,
) -> dict[str, float]:
    """BG/NBD + Gamma-Gamma fitted on the training snapshots, scored on the holdout with the
    same metrics as the model (churn: the BG/NBD probability of the label; LTV: expected
    spend). Conversion: none."""
    if spec.kind not in ("churn", "ltv"):
        return {}
    try:
        from ml import clv

        prediction = clv.baseline_predictions(
            spec.kind, train, holdout, spec.horizon_days, inactive_days
        )
    except clv.ClvUnavailable as exc:
        warnings.append(f"BG/NBD + Gamma-Gamma baseline not computed: {exc}")
        return {}
    return _evaluate(spec, y, prediction)


def _lift(
    metrics: dict[str, float], baseline: dict[str, float], prefix: str = "lift_over_baseline_"
) -> dict[str, float]:
    keys = (
        "roc_auc",
        "pr_auc",
        "top_decile_lift",
        "spearman",
        "normalized_gini",
        "top_decile_revenue_capture",
    )
    return {
        f"{prefix}{k}": metrics[k] - baseline[k] for k in keys if k in metrics and k in baseline
    }


def _finite(values: dict[str, float]) -> dict[str, float]:
    """MLflow rejects nothing, but NaN metrics make the UI charts useless; skip them."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
