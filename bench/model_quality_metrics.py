"""bench/model_quality.py's comparisons: model, baseline, oracle and a boosted ceiling on the
holdout rows, overall and on the quiet / active slices (split from model_quality.py)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from ml.metrics import normalized_gini


def compare(kind: str, holdout: pd.DataFrame, truth: pd.DataFrame, column: str) -> dict:
    """Model, baseline and oracle on the holdout rows the truth file covers."""
    joined = holdout.merge(truth, on=["user_id", "snapshot_date"], how="inner")
    joined = joined[joined[column].notna()]  # e.g. conversion: paid in the truth already
    oracle = joined[column].to_numpy(dtype=float)
    y = joined["label"].to_numpy(dtype=float)
    out = {"holdout_rows": len(holdout), "rows_with_truth": len(joined)}
    if kind == "ltv":
        for name, values in (
            ("model", joined["prediction"]),
            ("baseline", joined["baseline_prediction"]),
            ("oracle", oracle),
        ):
            out[f"{name}_spearman_realised"] = float(spearmanr(values, y).statistic)
            out[f"{name}_gini_realised"] = float(normalized_gini(y, np.asarray(values, float)))
        for name in ("prediction", "baseline_prediction"):
            label = "model" if name == "prediction" else "baseline"
            out[f"{label}_spearman_vs_true_expected"] = float(
                spearmanr(joined[name], oracle).statistic
            )
        return out
    for name, values in (
        ("model", joined["prediction"]),
        ("baseline", joined["baseline_prediction"]),
        ("oracle", oracle),
    ):
        out[f"{name}_auc"] = float(roc_auc_score(y, values))
    out["model_share_of_oracle"] = out["model_auc"] / out["oracle_auc"]
    out["base_rate"] = float(y.mean())
    return out


def ceiling_predictions(kind: str, frame: pd.DataFrame, result, features) -> pd.DataFrame:
    """The ceiling our features allow: a plain gradient-boosted model (defaults) fitted on
    the same training snapshots of our own feature table with the true label, predicting
    the same holdout. Returns user_id, snapshot_date, ceiling."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from contracts.models import model_kind

    spec = model_kind(kind)
    dates = pd.to_datetime(frame["snapshot_date"]).dt.date
    train_max = date.fromisoformat(result.window["train_max_snapshot"])
    holdout_day = date.fromisoformat(result.window["holdout_snapshot"])
    train, holdout = frame[dates <= train_max], frame[dates == holdout_day]
    train = train[train[spec.label].notna()]
    cols = [c for c in features if c in frame.columns]

    def X(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows[cols].copy()
        for c in cols:
            if out[c].dtype == object or str(out[c].dtype) in ("string", "category"):
                out[c] = pd.Categorical(
                    out[c].astype(str), categories=sorted(frame[c].astype(str).unique())
                )
            else:
                out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
        return out

    y = pd.to_numeric(train[spec.label]).to_numpy(float)
    if spec.task == "classification":
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
        predicted = model.fit(X(train), (y > 0).astype(int)).predict_proba(X(holdout))[:, 1]
    else:
        model = HistGradientBoostingRegressor(
            loss="poisson", categorical_features="from_dtype", random_state=0
        )
        predicted = model.fit(X(train), np.clip(y, 0, None)).predict(X(holdout))
    return pd.DataFrame(
        {
            "user_id": holdout["user_id"].astype(str).to_numpy(),
            "snapshot_date": pd.to_datetime(holdout["snapshot_date"]).dt.date.to_numpy(),
            "ceiling": predicted,
            "days_since_last_active": pd.to_numeric(holdout["days_since_last_active"]).to_numpy(),
        }
    )


CLV_FEATURES = ("clv_p_alive", "clv_expected_transactions", "clv_prediction")


def with_customer_base_features(frame: pd.DataFrame, kind: str, horizon_days: int) -> pd.DataFrame:
    """The customer-base model's outputs as columns (BG/NBD P(alive) and expected
    transactions, and its own prediction: P(no activity) for churn, BG/NBD x Gamma-Gamma
    revenue for LTV), fitted per snapshot on that snapshot's rows only (each customer's
    history up to it: no data after the snapshot)."""
    from ml import clv

    parts = []
    for _, rows in frame.groupby("snapshot_date", sort=False):
        rows = rows.copy()
        try:
            model = clv.customer_base_model(kind, horizon_days).fit(rows)
            data = clv.rfm(rows, *model._rfm)
            rows["clv_p_alive"] = model.model.p_alive(data)
            rows["clv_expected_transactions"] = model.model.expected_transactions(
                data, horizon_days / clv.WEEK
            )
            rows["clv_prediction"] = (
                model.predict_proba(rows)[:, 1] if kind == "churn" else model.predict(rows)
            )
        except (ValueError, FloatingPointError):  # ClvUnavailable is a ValueError
            for column in CLV_FEATURES:
                rows[column] = np.nan
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def metric(kind: str, rows: pd.DataFrame, column: str) -> float | None:
    """ROC AUC (churn) or normalised Gini (LTV) of `column` against the label."""
    if kind != "ltv":
        return _auc(rows, column)
    y = rows["label"].to_numpy(float)
    return float(normalized_gini(y, rows[column].to_numpy(float))) if y.sum() > 0 else None


def slice_rows(joined: pd.DataFrame, quiet_days: int):
    quiet = joined["days_since_last_active"].fillna(np.inf) >= quiet_days
    return (("all", joined), ("quiet", joined[quiet]), ("active", joined[~quiet]))


def _auc(rows: pd.DataFrame, column: str) -> float | None:
    y = rows["label"].to_numpy(float)
    return float(roc_auc_score(y, rows[column])) if 0 < y.sum() < len(y) else None


def slices(
    kind: str, joined: pd.DataFrame, quiet_days: int, column: str, observable: str | None
) -> dict:
    """Model / ceiling / oracle on all holdout rows and on the quiet / non-quiet slices."""
    out = {}
    quiet = joined["days_since_last_active"].fillna(np.inf) >= quiet_days
    for name, rows in (("all", joined), ("quiet", joined[quiet]), ("active", joined[~quiet])):
        y = rows["label"].to_numpy(float)
        entry = {"rows": len(rows), "base_rate": float(y.mean()) if len(y) else None}
        scored = [("prediction", "prediction"), ("ceiling", "ceiling"), ("oracle", column)]
        for score, col in scored + ([("observable", observable)] if observable else []):
            values = rows[col].to_numpy(float)
            if kind == "ltv":
                entry[score] = float(normalized_gini(y, values)) if len(y) and y.sum() > 0 else None
            else:
                entry[score] = float(roc_auc_score(y, values)) if 0 < y.sum() < len(y) else None
        p, c, o = entry["prediction"], entry["ceiling"], entry["oracle"]
        entry["model_share_of_ceiling"] = p / c if p is not None and c else None
        entry["model_share_of_oracle"] = p / o if p is not None and o else None
        if observable:
            b = entry["observable"]
            entry["model_share_of_observable"] = p / b if p is not None and b else None
        out[name] = entry
    return out
