"""Train one model (churn, LTV or conversion) from its dbt training mart.

`fit_and_evaluate` is pure (no MLflow): it picks the training snapshots by a documented
rule, splits by time, fits every champion candidate (ml.candidates) on the same training
snapshots, scores each on the same holdout, selects the best and refits it on all labelled
snapshots up to the newest label. `ml.tracking.log_and_register` then logs every candidate
side by side, registers the refitted winner and moves the champion alias.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from contracts.models import TRAINING_SNAPSHOT_EVERY_DAYS, LabelDefinition, ModelKind, model_kind
from ml import candidates
from ml.candidates import Evaluation
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
from ml.splits import SNAPSHOT_COLUMN, TimeSplit, every_k_days, time_split

# Probability bands: < 0.2 low, < 0.5 medium, else high. Stored with every model version.
PROBABILITY_BAND_THRESHOLDS = (0.2, 0.5)
BAND_LABELS = ("low", "medium", "high")
# Revenue bands are quantiles of the holdout predictions: bottom half low, top decile high.
REVENUE_BAND_QUANTILES = (0.5, 0.9)
MIN_TRAIN_ROWS = 100
MIN_HOLDOUT_ROWS = 30
# A classifier needs this many rows of each class in training (3-fold calibration and the
# early-stopping split each need several of the rarer class).
MIN_CLASS_ROWS = 10
# Numeric columns with fewer non-null training values are dropped (they can be empty in a fold).
MIN_NON_NULL_VALUES = 20
# A churn label whose positives are mostly already inactive at the snapshot is flagged.
ALREADY_GONE_WARN_SHARE = 0.5


class ModelSkipped(InsufficientDataError):
    """The data cannot support this model today; the message says model, rows, positives and
    what it needs. The orchestration layer skips the model and the others carry on."""


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


def target(df: pd.DataFrame, spec: ModelKind) -> np.ndarray:
    values = pd.to_numeric(df[spec.label], errors="coerce").to_numpy(dtype=float)
    if spec.task == "classification":
        return (values > 0).astype(int)
    return np.clip(values, 0.0, None)  # refunds can make a window negative; revenue floors at 0


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


def _require_trainable(spec: ModelKind, y: np.ndarray, window: str) -> None:
    """Skip (with the numbers) when the labels cannot support a fit."""
    if spec.task == "classification":
        positives = int((y > 0).sum())
        negatives = len(y) - positives
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
        # Inactivity churn trains on quiet customers on purpose; cancellation should not
        # mostly predict customers who stopped using the product long ago.
        if share > ALREADY_GONE_WARN_SHARE and label and label.definition == "cancellation":
            notes.append(
                f"churn label: {share:.0%} of holdout positives were already inactive for "
                f"{inactive_days}+ days at the snapshot; the label mostly marks customers "
                "already gone"
            )
    return out, notes


def _sampled(rows: pd.DataFrame, max_rows: int | None, what: str, notes: list[str]):
    if max_rows and len(rows) > max_rows:
        notes.append(f"sampled {max_rows} of {len(rows)} {what} rows")
        return rows.sample(n=max_rows, random_state=0).reset_index(drop=True)
    return rows


def _split(
    spec: ModelKind, labelled: pd.DataFrame, holdout_date: date | None
) -> tuple[TimeSplit, str]:
    try:
        split = time_split(labelled, spec.horizon_days, holdout_date)
    except FeatureError as exc:
        raise ModelSkipped(f"{spec.kind}: {exc}") from exc
    window = f"snapshots {split.train_min_date}..{split.train_max_date}"
    if len(split.train) < MIN_TRAIN_ROWS or len(split.holdout) < MIN_HOLDOUT_ROWS:
        raise ModelSkipped(
            f"{spec.kind}: {len(split.train)} training rows ({window}) and "
            f"{len(split.holdout)} holdout rows; need at least {MIN_TRAIN_ROWS} and "
            f"{MIN_HOLDOUT_ROWS}. The data does not yet cover enough {spec.horizon_days}-day "
            "label windows."
        )
    return split, window


def _screened_features(
    spec: ModelKind, train: pd.DataFrame, features: tuple[str, ...], window: str, notes: list
) -> tuple[FeatureSpec, dict[str, str]]:
    declared = declared_feature_spec(train, features)
    fspec, dropped = screen_degenerate(train, declared, MIN_NON_NULL_VALUES)
    notes += [f"feature {name} dropped: {reason}" for name, reason in dropped.items()]
    if not fspec.columns:
        raise ModelSkipped(
            f"{spec.kind}: every declared feature is degenerate on {len(train)} "
            f"training rows ({window}): {dropped}"
        )
    return with_reference(train, fspec), dropped


def _refit(
    spec: ModelKind,
    winner: str,
    build,
    labelled: pd.DataFrame,
    max_rows: int | None,
    notes: list[str],
) -> tuple[object, FeatureSpec, dict[str, str | int]]:
    """The winner refitted on every selected labelled snapshot, the holdout's included."""
    rows = _sampled(labelled, max_rows, "refit", notes)
    model, mspec = candidates.fit_one(spec, build, rows, target(rows, spec))
    dates = pd.to_datetime(labelled[SNAPSHOT_COLUMN]).dt.date
    window = {
        "refit_min_snapshot": dates.min().isoformat(),
        "refit_max_snapshot": dates.max().isoformat(),
        "refit_snapshots": int(dates.nunique()),
        "refit_rows": len(rows),
        "refit_candidate": winner,
    }
    return model, mspec, window


def fit_and_evaluate(
    kind: str,
    training_df: pd.DataFrame,
    *,
    features: tuple[str, ...] | list[str] | None = None,
    label: LabelDefinition | None = None,
    holdout_date: date | None = None,
    max_train_rows: int | None = 400_000,
    reference_rows: int = 5000,
    snapshot_every_days: int = TRAINING_SNAPSHOT_EVERY_DAYS,
) -> Evaluation:
    """Select, split, fit every candidate, pick the best on the holdout, refit it (no MLflow).

    `features` are the declared input columns (default: `ml.feature_sets.declared_features
    (kind)`); degenerate ones are dropped and logged. `label` describes how the label was
    built (its horizon sets the purge gap). Rows above `max_train_rows` are sampled (seeded).
    Raises `ModelSkipped` when the data cannot support the model."""
    spec = model_kind(kind)
    if label is not None:
        spec = replace(spec, horizon_days=label.horizon_days)
    declared = tuple(features) if features is not None else declared_features(kind)
    if training_df.empty:
        setting = label.horizon_setting if label and label.horizon_setting else "the horizon"
        raise ModelSkipped(
            f"{spec.kind}: the training table is empty; the data loaded does not yet cover a "
            f"{spec.horizon_days}-day label window after any weekly snapshot ({setting} "
            "is longer than the history allows: load more history or shorten it)"
        )
    labelled, warnings = _labels(training_df, spec)
    if labelled.empty:
        raise ModelSkipped(f"{spec.kind}: no row has a {spec.label} label yet")
    labelled, notes = every_k_days(labelled, snapshot_every_days)
    warnings += notes
    split, window = _split(spec, labelled, holdout_date)
    warnings += split.warnings
    train = _sampled(split.train, max_train_rows, "training", warnings)
    y_train, y_hold = target(train, spec), target(split.holdout, spec)
    _require_trainable(spec, y_train, window)
    fspec, dropped = _screened_features(spec, train, declared, window, warnings)

    fitted, left_out = candidates.fit_candidates(spec, fspec, train, y_train, split.holdout, y_hold)
    warnings += [f"candidate {name} left out: {why}" for name, why in left_out.items()]
    if candidates.BOOSTED not in fitted:
        raise ModelSkipped(
            f"{spec.kind}: the estimator rejected {len(train)} training rows ({window}) with "
            f"features {list(fspec.columns)}: {left_out.get(candidates.BOOSTED)}"
        )
    winner, why = candidates.select(spec, fitted)
    best = fitted[winner]
    label_metrics, label_notes = _label_metrics(spec, label, split.holdout, y_hold, y_train)
    warnings += label_notes
    X_hold = prepare_features(split.holdout, best.spec)
    importance = _importance(spec, best.model, X_hold, y_hold)
    build = candidates.builders(spec, fspec)[winner]
    model, mspec, refit_window = _refit(spec, winner, build, labelled, max_train_rows, warnings)
    reference = prepare_features(train, mspec)
    reference = reference.sample(n=min(reference_rows, len(reference)), random_state=0)
    reference = reference.assign(prediction=candidates.predict(spec, model, reference))
    return Evaluation(
        kind=spec,
        label=label,
        split=split,
        declared=declared,
        features=fspec,
        candidates=fitted,
        left_out=left_out,
        winner=winner,
        selection_reason=why,
        model=model,
        spec=mspec,
        refit_window=refit_window,
        y_holdout=y_hold,
        bands=_bands(spec, best.prediction),
        importance=importance,
        reference=reference,
        label_metrics=label_metrics,
        train_rows=len(train),
        warnings=warnings,
        dropped_features=dropped,
        label_flags=label_notes,
    )
