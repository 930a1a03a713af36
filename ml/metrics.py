"""Evaluation metrics for the probability models and the revenue model.

Every function returns NaN instead of raising when a metric is undefined (for example a
holdout with a single class) so one thin week never aborts a training run.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    roc_auc_score,
)

NAN = float("nan")


def _top_fraction_mask(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the top `fraction` by score; ties broken by position (stable)."""
    n_top = max(1, math.ceil(len(scores) * fraction))
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:n_top]] = True
    return mask


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, log loss, and lift/capture of positives in the top decile."""
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(proba, dtype=float), 1e-6, 1 - 1e-6)
    both_classes = 0 < y.sum() < len(y)
    base_rate = float(y.mean()) if len(y) else NAN
    top = _top_fraction_mask(p, 0.1) if len(y) else np.zeros(0, dtype=bool)
    positives = y.sum()
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else NAN,
        "pr_auc": float(average_precision_score(y, p)) if both_classes else NAN,
        "brier": float(brier_score_loss(y, p)) if len(y) else NAN,
        "log_loss": float(log_loss(y, p, labels=[0.0, 1.0])) if len(y) else NAN,
        "top_decile_lift": float(y[top].mean() / base_rate) if positives else NAN,
        "top_decile_capture": float(y[top].sum() / positives) if positives else NAN,
        "base_rate": base_rate,
        "mean_prediction": float(p.mean()) if len(p) else NAN,
    }


def normalized_gini(y_true: np.ndarray, prediction: np.ndarray) -> float:
    """Gini of the prediction's ordering divided by the Gini of the perfect ordering.

    1 = ranks revenue perfectly, 0 = random; handles the mass of zero revenue properly.
    """

    def gini(actual: np.ndarray, order_by: np.ndarray) -> float:
        order = np.lexsort((np.arange(len(order_by)), -order_by))
        sorted_actual = actual[order]
        cumulative = np.cumsum(sorted_actual) / sorted_actual.sum()
        return float(cumulative.sum() / len(actual) - (len(actual) + 1) / (2 * len(actual)))

    y = np.asarray(y_true, dtype=float)
    pred = np.asarray(prediction, dtype=float)
    if len(y) < 2 or y.sum() <= 0:
        return NAN
    perfect = gini(y, y)
    return gini(y, pred) / perfect if perfect > 0 else NAN


def regression_metrics(y_true: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Spearman, normalised Gini, top-decile revenue capture, MAE and total-revenue ratio."""
    y = np.asarray(y_true, dtype=float)
    pred = np.asarray(prediction, dtype=float)
    total = y.sum()
    constant = len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0
    top = _top_fraction_mask(pred, 0.1) if len(y) else np.zeros(0, dtype=bool)
    return {
        "spearman": NAN if constant else float(spearmanr(y, pred).statistic),
        "normalized_gini": normalized_gini(y, pred),
        "top_decile_revenue_capture": float(y[top].sum() / total) if total > 0 else NAN,
        "mae": float(mean_absolute_error(y, pred)) if len(y) else NAN,
        # sum(pred) / sum(actual): 1.0 = calibrated in total; the revenue "calibration" check
        "calibration_ratio": float(pred.sum() / total) if total > 0 else NAN,
        "mean_actual": float(y.mean()) if len(y) else NAN,
        "mean_prediction": float(pred.mean()) if len(pred) else NAN,
    }


def cumulative_gains(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of users targeted (x) vs share of the total outcome captured (y), best first."""
    y = np.asarray(y_true, dtype=float)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    captured = np.concatenate([[0.0], np.cumsum(y[order])])
    total = captured[-1] if captured[-1] > 0 else 1.0
    targeted = np.arange(len(y) + 1) / max(len(y), 1)
    return targeted, captured / total
