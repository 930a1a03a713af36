"""Champion candidates and the rule that picks one.

Every training run fits the same candidates on the same training snapshots and scores them
on the same time-split holdout:
- `boosted`: calibrated gradient boosting (classification) / Poisson boosting (revenue);
- `linear`: logistic regression (classification) / Poisson GLM (revenue);
- `customer_base`: BG/NBD (+ Gamma-Gamma for revenue), churn and LTV only.
The champion is the candidate with the best primary metric on the holdout, whichever it is
(a baseline included, a first version included). A candidate that cannot be fitted on this
data is left out with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from contracts.models import LabelDefinition, ModelKind
from ml import clv
from ml.estimators import (
    calibrated_classifier,
    linear_revenue,
    logistic_baseline,
    revenue_regressor,
)
from ml.features import FeatureSpec, prepare_features, with_reference
from ml.metrics import classification_metrics, regression_metrics
from ml.splits import TimeSplit

# Reason codes consider this many of the model's most important features (one re-predict each).
REASON_FEATURES = 12
BOOSTED, LINEAR, CUSTOMER_BASE = "boosted", "linear", "customer_base"
# Ties go to the simpler candidate: the order below, simplest last, is reversed on ties.
SIMPLICITY = (CUSTOMER_BASE, LINEAR, BOOSTED)


@dataclass
class Fitted:
    """A fitted candidate: its model, the feature spec it reads and its holdout figures."""

    name: str
    model: object
    spec: FeatureSpec
    prediction: np.ndarray
    metrics: dict[str, float]


def evaluate(kind: ModelKind, y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    if kind.task == "classification":
        return classification_metrics(y, prediction)
    metrics = regression_metrics(y, prediction)
    ratio = metrics["calibration_ratio"]
    metrics["calibration_error"] = abs(ratio - 1.0) if not math.isnan(ratio) else math.nan
    return metrics


def predict(kind: ModelKind, model, X: pd.DataFrame) -> np.ndarray:
    if kind.task == "classification":
        return model.predict_proba(X)[:, 1]
    return np.clip(model.predict(X), 0.0, None)


def _customer_base_spec(kind: ModelKind, rows: pd.DataFrame) -> FeatureSpec:
    columns = clv.ACTIVITY_COLUMNS if kind.task == "classification" else clv.PURCHASE_COLUMNS
    return with_reference(rows, FeatureSpec(tuple(columns), (), (), {}))


def builders(
    kind: ModelKind, features: FeatureSpec
) -> dict[str, Callable[[pd.DataFrame], tuple[object, FeatureSpec]]]:
    """name -> unfitted-model factory taking the training rows; returns (model, its spec)."""

    def boosted(rows: pd.DataFrame):
        make = calibrated_classifier if kind.task == "classification" else revenue_regressor
        return make(features, len(rows)), features

    def linear(rows: pd.DataFrame):
        make = logistic_baseline if kind.task == "classification" else linear_revenue
        return make(features, len(rows)), features

    def customer_base(rows: pd.DataFrame):
        model = clv.customer_base_model(kind.kind, kind.horizon_days)
        return model, _customer_base_spec(kind, rows)

    out = {BOOSTED: boosted, LINEAR: linear}
    if kind.kind in ("churn", "ltv"):
        out[CUSTOMER_BASE] = customer_base
    return out


def fit_one(
    kind: ModelKind, build, rows: pd.DataFrame, y: np.ndarray
) -> tuple[object, FeatureSpec]:
    """Fit one candidate on `rows`. The customer-base model is fitted on the latest snapshot
    only (one row per customer: each one's history to date)."""
    model, spec = build(rows)
    if isinstance(model, (clv.CustomerBaseChurn, clv.CustomerBaseValue)):
        latest = rows["snapshot_date"] == rows["snapshot_date"].max()
        model.fit(prepare_features(rows.loc[latest], spec))
    else:
        model.fit(prepare_features(rows, spec), y)
    return model, spec


def fit_candidates(
    kind: ModelKind,
    features: FeatureSpec,
    train: pd.DataFrame,
    y_train: np.ndarray,
    holdout: pd.DataFrame,
    y_holdout: np.ndarray,
) -> tuple[dict[str, Fitted], dict[str, str]]:
    """Fit every candidate on `train`, score each on `holdout`; (fitted, left-out reasons)."""
    fitted: dict[str, Fitted] = {}
    left_out: dict[str, str] = {}
    for name, build in builders(kind, features).items():
        try:
            model, spec = fit_one(kind, build, train, y_train)
            prediction = predict(kind, model, prepare_features(holdout, spec))
        except (ValueError, FloatingPointError) as exc:  # ClvUnavailable is a ValueError
            left_out[name] = f"{type(exc).__name__}: {exc}"
            continue
        fitted[name] = Fitted(name, model, spec, prediction, evaluate(kind, y_holdout, prediction))
    return fitted, left_out


def select(kind: ModelKind, fitted: dict[str, Fitted]) -> tuple[str, str]:
    """(winner, why): the best primary metric on the holdout; ties go to the simpler one.
    A candidate whose metric is undefined (NaN) never wins while another is defined."""
    metric = kind.primary_metric
    scores = {name: c.metrics.get(metric, math.nan) for name, c in fitted.items()}
    defined = {n: s for n, s in scores.items() if not math.isnan(s)}
    if not defined:
        name = next(n for n in reversed(SIMPLICITY) if n in fitted)
        return name, f"{metric} undefined on this holdout for every candidate; kept {name}"
    best = max(defined.values())
    winner = next(n for n in SIMPLICITY if defined.get(n) == best)
    others = ", ".join(f"{n} {s:.4f}" for n, s in sorted(scores.items()) if n != winner)
    return winner, f"{winner} has the best holdout {metric} {best:.4f} (others: {others})"


def trailing(kind: ModelKind, champion: str, fitted: dict[str, Fitted]) -> list[str]:
    """Candidates that beat the champion on the holdout (empty by construction; checked)."""
    metric = kind.primary_metric
    mine = fitted[champion].metrics.get(metric, math.nan)
    return [
        name
        for name, c in fitted.items()
        if not math.isnan(c.metrics.get(metric, math.nan))
        and (math.isnan(mine) or c.metrics[metric] > mine)
    ]


@dataclass
class Evaluation:
    """What `fit_and_evaluate` found: every candidate's holdout figures, the winner and the
    winner refitted on all labelled snapshots (`model`, read through `spec`)."""

    kind: ModelKind
    label: LabelDefinition | None
    split: TimeSplit
    declared: tuple[str, ...]
    features: FeatureSpec
    candidates: dict[str, Fitted]
    left_out: dict[str, str]
    winner: str
    selection_reason: str
    model: object
    spec: FeatureSpec
    refit_window: dict[str, str | int]
    y_holdout: np.ndarray
    bands: dict
    importance: pd.Series
    reference: pd.DataFrame
    label_metrics: dict[str, float]
    train_rows: int
    warnings: list[str] = field(default_factory=list)
    dropped_features: dict[str, str] = field(default_factory=dict)
    label_flags: list[str] = field(default_factory=list)

    @property
    def winner_fit(self) -> Fitted:
        return self.candidates[self.winner]

    @property
    def trailing(self) -> list[str]:
        return trailing(self.kind, self.winner, self.candidates)


def reason_features(importance: pd.Series, fspec: FeatureSpec) -> list[str]:
    """Reason-code candidates: the REASON_FEATURES most important features on the holdout
    (positive permutation importance), in the spec's order; all features when none help."""
    useful = importance[importance > 0].head(REASON_FEATURES).index
    return [c for c in fspec.columns if c in set(useful)] or list(fspec.columns)
