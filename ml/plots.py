"""Evaluation plots written as PNG files (matplotlib Agg, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from ml.metrics import cumulative_gains  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _has_both_classes(y: np.ndarray) -> bool:
    return 0 < np.sum(y) < len(y)


def roc_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    if _has_both_classes(y):
        for label, scores in curves.items():
            fpr, tpr, _ = roc_curve(y, scores)
            ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
    ax.legend(loc="lower right")
    return _save(fig, path)


def precision_recall_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    if _has_both_classes(y):
        for label, scores in curves.items():
            precision, recall, _ = precision_recall_curve(y, scores)
            ax.plot(recall, precision, label=label)
        ax.axhline(float(np.mean(y)), color="k", ls="--", lw=0.8, label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (holdout)")
    ax.legend(loc="upper right")
    return _save(fig, path)


def calibration_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, scores in curves.items():
        if _has_both_classes(y):
            observed, predicted = calibration_curve(y, scores, n_bins=10, strategy="quantile")
            ax.plot(predicted, observed, marker="o", label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title="Calibration")
    ax.legend(loc="upper left")
    return _save(fig, path)


def gains_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path, what: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, scores in curves.items():
        targeted, captured = cumulative_gains(y, scores)
        ax.plot(targeted, captured, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="random")
    ax.set(
        xlabel="share of users (best first)", ylabel=f"share of {what}", title="Cumulative gains"
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def importance_plot(importance: pd.Series, path: Path, top: int = 20) -> Path:
    shown = importance.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(6, max(3, 0.3 * len(shown) + 1)))
    ax.barh(shown.index, shown.to_numpy())
    ax.set(xlabel="permutation importance (holdout)", title="Feature importance")
    return _save(fig, path)


def calibration_by_decile_plot(y: np.ndarray, prediction: np.ndarray, path: Path) -> Path:
    """Revenue model: mean predicted vs mean actual per prediction decile."""
    frame = pd.DataFrame({"y": y, "p": prediction})
    frame["decile"] = pd.qcut(frame["p"].rank(method="first"), 10, labels=False, duplicates="drop")
    means = frame.groupby("decile")[["p", "y"]].mean()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(means["p"], means["y"], marker="o", label="model")
    top = float(max(means.max().max(), 1e-9))
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="perfect")
    ax.set(
        xlabel="mean predicted revenue", ylabel="mean actual revenue", title="Calibration by decile"
    )
    ax.legend(loc="upper left")
    return _save(fig, path)
