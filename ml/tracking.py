"""Log a training run to MLflow and register its winner (ml.train.fit_and_evaluate made it).

The run shows every candidate side by side (`candidate_<name>_<metric>` metrics and a
`candidates` table), the refit window, and a `segflow.champion_trails` tag / metric that
flags a champion trailing any candidate on the holdout. The refitted winner is registered
(alias challenger) and becomes champion under ml.promotion's rule. A boosted or linear
winner is logged with the sklearn flavour; the customer-base model as a pyfunc.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from threadpoolctl import threadpool_limits

from ml import candidates, plots, registry
from ml.candidates import Evaluation, reason_features
from ml.customer_base_pyfunc import CustomerBasePyfunc
from ml.features import FeatureSpec, prepare_features
from ml.promotion import PromotionDecision, decide
from ml.train import fit_and_evaluate


@dataclass
class TrainResult:
    """Everything the orchestration layer shows about one training run."""

    kind: str
    model_name: str
    version: str
    run_id: str
    experiment_id: str
    model_uri: str
    metrics: dict[str, float]  # the winner's holdout figures
    baseline_metrics: dict[str, float]  # the linear candidate's
    candidate_metrics: dict[str, dict[str, float]]
    winner: str
    decision: PromotionDecision
    window: dict[str, str | int]
    refit_window: dict[str, str | int]
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


def _plots(ev: Evaluation, folder: Path) -> dict[str, Path]:
    y = ev.y_holdout
    curves = {name: c.prediction for name, c in ev.candidates.items()}
    paths = {
        "feature_importance": plots.importance_plot(
            ev.importance, folder / "feature_importance.png"
        )
    }
    if ev.kind.task == "classification":
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
            y, ev.winner_fit.prediction, folder / "calibration.png"
        )
        paths["cumulative_gains"] = plots.gains_plot(
            y, curves, folder / "cumulative_gains.png", "revenue"
        )
    return paths


def _incumbent(ev: Evaluation, tracking_uri: str) -> tuple[str | None, float | None, str | None]:
    """The current champion's primary metric on this holdout, when comparable."""
    name = ev.kind.registered_name
    client = registry.connect(tracking_uri)
    current = registry.version_by_alias(client, name, registry.CHAMPION)
    if current is None:
        return None, None, None
    try:
        champion = registry.load_by_alias(name, tracking_uri)
    except (LookupError, ValueError) as exc:
        return str(current.version), None, f"cannot be loaded: {type(exc).__name__}: {exc}"
    version, metric = str(current.version), ev.kind.primary_metric
    if champion.meta.get("holdout_snapshot") == ev.split.holdout_date.isoformat():
        # Same holdout: its own figure, measured when it was fitted without the holdout.
        logged = champion.meta.get("holdout_metrics", {}).get(metric)
        return version, logged, None if logged is not None else "no holdout figure stored"
    seen = champion.meta.get("refit_window", {}).get("refit_max_snapshot")
    if seen is None or date.fromisoformat(seen) >= ev.split.holdout_date:
        return version, None, f"it was fitted on the holdout {ev.split.holdout_date}"
    try:
        spec = FeatureSpec.from_dict(champion.meta["feature_spec"])
        X = prepare_features(ev.split.holdout, spec)
        metrics = candidates.evaluate(
            ev.kind, ev.y_holdout, candidates.predict(ev.kind, champion.model, X)
        )
    except (LookupError, ValueError) as exc:
        return version, None, f"cannot score this data: {exc}"
    return version, metrics[metric], None


def _meta(ev: Evaluation) -> dict:
    return {
        "kind": ev.kind.kind,
        "label": ev.kind.label,
        "label_definition": ev.label.params()
        if ev.label
        else {"label_horizon_days": ev.kind.horizon_days},
        "task": ev.kind.task,
        "candidate": ev.winner,
        "feature_spec": ev.spec.to_dict(),
        "declared_features": list(ev.declared),
        "dropped_features": ev.dropped_features,
        "bands": ev.bands,
        "reason_features": reason_features(ev.importance, ev.spec)
        if ev.winner != candidates.CUSTOMER_BASE
        else list(ev.spec.columns),
        "holdout_snapshot": ev.split.holdout_date.isoformat(),
        "holdout_metrics": ev.winner_fit.metrics,
        "refit_window": ev.refit_window,
        "population": "rows of the training mart; churn: inactivity = every customer ever "
        "active, cancellation = customers not cancelled at the snapshot; conversion: users "
        "not on a paid plan",
    }


def _params(ev: Evaluation) -> dict:
    fspec = ev.features
    return {
        **ev.split.window_params(),
        **ev.refit_window,
        "label": ev.kind.label,
        "label_horizon_days": ev.kind.horizon_days,
        **(ev.label.params() if ev.label else {}),
        "rows_used_for_training": ev.train_rows,
        "n_features": len(fspec.columns),
        "n_declared_features": len(ev.declared),
        "dropped_features": (
            ", ".join(f"{k}: {v}" for k, v in ev.dropped_features.items()) or "none"
        )[:6000],
        "numeric_features": ",".join(fspec.numeric + fspec.boolean)[:6000],
        "categorical_features": ",".join(fspec.categorical)[:6000],
        "candidates": ",".join(ev.candidates),
        "candidates_left_out": "; ".join(f"{k}: {v}" for k, v in ev.left_out.items())[:6000]
        or "none",
        "champion_candidate": ev.winner,
        "selection_rule": f"best holdout {ev.kind.primary_metric}; ties to the simpler",
        "band_thresholds": ",".join(f"{t:.6g}" for t in ev.bands["thresholds"]),
    }


def _candidate_table(ev: Evaluation) -> pd.DataFrame:
    rows = [
        {"candidate": name, "champion": name == ev.winner, **c.metrics}
        for name, c in ev.candidates.items()
    ]
    return pd.DataFrame(rows).sort_values(ev.kind.primary_metric, ascending=False)


def _log_model(ev: Evaluation, X_example: pd.DataFrame, meta: dict):
    prediction = candidates.predict(ev.kind, ev.model, X_example)
    common = {
        "name": "model",
        "signature": infer_signature(X_example, prediction),
        "input_example": X_example.head(5),
        "registered_model_name": ev.kind.registered_name,
        "metadata": {registry.META_KEY: meta},
        "pip_requirements": registry.pip_requirements(),
    }
    if ev.winner == candidates.CUSTOMER_BASE:  # its pyfunc predict is the probability
        return mlflow.pyfunc.log_model(python_model=CustomerBasePyfunc(ev.model), **common)
    # A classifier's pyfunc gives [P(0), P(1)] per row, so `mlflow.pyfunc.spark_udf` (and any
    # pyfunc server) returns the probability segflow scores with, not a 0/1 class.
    classifier = ev.kind.task == "classification"
    return mlflow.sklearn.log_model(
        ev.model,
        skops_trusted_types=registry.skops_trusted_types(ev.model),
        pyfunc_predict_fn="predict_proba" if classifier else "predict",
        **common,
    )


def log_and_register(
    ev: Evaluation, tracking_uri: str, artifact_root: Path | None, output_dir: Path | None
) -> TrainResult:
    """Log `ev` to MLflow, register the refitted winner and apply the champion rule."""
    spec = ev.kind
    folder = Path(output_dir or tempfile.mkdtemp(prefix=f"{spec.registered_name}-"))
    folder.mkdir(parents=True, exist_ok=True)
    plot_paths = _plots(ev, folder)
    meta = _meta(ev)
    champion_version, champion_score, champion_note = _incumbent(ev, tracking_uri)
    winner = ev.winner_fit
    client = registry.connect(tracking_uri)
    experiment_id = registry.ensure_experiment(client, spec.registered_name, artifact_root)
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{spec.kind}-{ev.split.holdout_date.isoformat()}",
    ) as run:
        mlflow.log_params(_params(ev))
        mlflow.log_metrics(_finite(winner.metrics))
        for name, c in ev.candidates.items():
            mlflow.log_metrics(_finite({f"candidate_{name}_{k}": v for k, v in c.metrics.items()}))
        mlflow.log_metrics(_finite({f"label_{k}": v for k, v in ev.label_metrics.items()}))
        mlflow.log_table(_candidate_table(ev), artifact_file="candidates.json")
        mlflow.set_tags(
            {
                "segflow.kind": spec.kind,
                "segflow.warnings": " | ".join(ev.warnings)[:4000],
                "segflow.selection": ev.selection_reason[:4000],
                "segflow.label_flag": "; ".join(ev.label_flags)[:4000] or "ok",
            }
        )
        for path in plot_paths.values():
            mlflow.log_artifact(str(path), artifact_path="plots")
        registry.log_json_artifact(
            {
                **meta,
                "candidates": {n: c.metrics for n, c in ev.candidates.items()},
                "label_metrics": ev.label_metrics,
                "feature_importance": ev.importance.to_dict(),
            },
            registry.META_ARTIFACT,
        )
        registry.log_reference_sample(ev.reference)
        X_hold = prepare_features(ev.split.holdout, ev.spec)
        info = _log_model(ev, X_hold.head(200), meta)
        version = str(info.registered_model_version)
        client.set_registered_model_alias(spec.registered_name, registry.CHALLENGER, version)
        decision = decide(
            spec.primary_metric,
            ev.winner,
            ev.selection_reason,
            winner.metrics.get(spec.primary_metric, math.nan),
            version,
            champion_version,
            champion_score,
            champion_note,
            ev.trailing,
        )
        if decision.promoted:
            client.set_registered_model_alias(spec.registered_name, registry.CHAMPION, version)
        mlflow.set_tags(decision.as_tags())
        mlflow.log_metrics(_finite(decision.as_metrics()))
        for key, value in decision.as_tags().items():
            client.set_model_version_tag(spec.registered_name, version, key, value)
    return _result(ev, run, experiment_id, version, decision, plot_paths)


def _result(ev: Evaluation, run, experiment_id: str, version: str, decision, plot_paths):
    holdout = ev.split.holdout
    linear = ev.candidates.get(candidates.LINEAR)
    base = ev.candidates.get(candidates.CUSTOMER_BASE)
    return TrainResult(
        kind=ev.kind.kind,
        model_name=ev.kind.registered_name,
        version=version,
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_uri=f"models:/{ev.kind.registered_name}/{version}",
        metrics=ev.winner_fit.metrics,
        baseline_metrics=linear.metrics if linear else {},
        candidate_metrics={n: c.metrics for n, c in ev.candidates.items()},
        winner=ev.winner,
        decision=decision,
        window=ev.split.window_params(),
        refit_window=ev.refit_window,
        bands=ev.bands,
        plot_paths=plot_paths,
        feature_importance=ev.importance,
        feature_columns=list(ev.features.columns),
        holdout_predictions=pd.DataFrame(
            {
                "user_id": holdout["user_id"].to_numpy()
                if "user_id" in holdout
                else np.arange(len(ev.y_holdout)),
                "snapshot_date": ev.split.holdout_date,
                "label": ev.y_holdout,
                "prediction": ev.winner_fit.prediction,
                "baseline_prediction": linear.prediction if linear else np.nan,
            }
        ),
        warnings=ev.warnings,
        dropped_features=ev.dropped_features,
        label_metrics=ev.label_metrics,
        clv_baseline_metrics=base.metrics if base else {},
    )


def _finite(values: dict[str, float]) -> dict[str, float]:
    """NaN metrics make the MLflow UI charts useless; skip them."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def train_model(
    kind: str,
    training_df: pd.DataFrame,
    tracking_uri: str,
    artifact_root: Path | None = None,
    *,
    output_dir: Path | None = None,
    n_threads: int | None = 1,
    **fit_options: Any,
):
    """`ml.train.fit_and_evaluate` then `log_and_register`; returns its `TrainResult`.

    `training_df` is the dbt mart of the kind (contracts.models). `fit_options` are
    `fit_and_evaluate`'s keywords (features, label, holdout_date, max_train_rows, ...; their
    defaults are written there). Plots go to `output_dir` (default: a temp folder).
    `n_threads` caps OpenMP/BLAS threads (None = all cores)."""
    with threadpool_limits(limits=n_threads):
        evaluation = fit_and_evaluate(kind, training_df, **fit_options)
        return log_and_register(evaluation, tracking_uri, artifact_root, output_dir)
