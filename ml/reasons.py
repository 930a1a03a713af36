"""Reason codes: the features that push one user's prediction up, as readable codes.

Method (fast enough for every user daily): for each candidate feature, replace the user's
value by the training reference (median or mode) and re-predict. The drop in the prediction
is that feature's contribution for that user; the top positive contributions become codes.
Only the rows whose value differs from the reference are re-predicted, so cost grows with
candidates, not users x features; boosted champions skip re-predicting altogether through
the exact tree walk (ml.pipeline_predict, ml.tree_reasons). Models store their candidates
(`reason_features`: the most important features on the holdout); codes depend only on the
user's own row. Codes are generic (`<feature>_high`, `<feature>_low`, `no_<milestone>`,
`<feature>_<category>`) with a small table of friendlier names for the contract's main
features.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.features import FeatureSpec
from ml.pipeline_predict import PipelinePredict

Predict = Callable[[pd.DataFrame], np.ndarray]


def feature_contributions(
    X: pd.DataFrame,
    spec: FeatureSpec,
    predict: Predict,
    candidates: tuple[str, ...] | list[str] | None = None,
    base: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per user and candidate feature (default: all): prediction(user) - prediction(user with
    that feature at reference). `base`: the predictions of X when already known."""
    base = predict(X) if base is None else np.asarray(base, dtype=float)
    contributions = {}
    names = [c for c in spec.columns if candidates is None or c in set(candidates)]
    fast = predict if isinstance(predict, PipelinePredict) else None
    transformed = fast.transform(X) if fast is not None else None
    references = (
        fast.transformed_references(X, {name: spec.reference[name] for name in names})
        if fast is not None
        else {}
    )
    overrides = {}
    for name in names:
        reference = spec.reference[name]
        mask = _differs(X[name], reference, name in spec.categorical)
        values = np.zeros(len(X))
        if mask.any() and fast is None:
            changed = X.loc[mask].copy()
            changed[name] = reference
            values[mask] = base[mask] - predict(changed)
        elif mask.any():
            position = fast.numeric_position(name)
            changed_z = None
            if position is not None:  # a number transformed on its own: change its column
                override = fast.override_columns(transformed, [position], [references[name]])
            else:  # only the transformers reading this feature run again, on its rows
                override = fast.override_feature(X, transformed, mask, name, reference)
            if override is not None:  # the tree walk below, for all candidates at once
                overrides[name] = (mask, override)
                continue
            if position is None:
                changed = X.loc[mask].copy()
                changed[name] = reference
                changed_z = fast.transform(changed)
            if changed_z is None:
                changed_z = transformed[mask].copy()
                changed_z[:, position] = references[name]
            values[mask] = base[mask] - fast.predict_transformed(changed_z)
        contributions[name] = values
    if overrides:
        contributions.update(fast.contributions(X, base, overrides))
    return pd.DataFrame({name: contributions[name] for name in names}, index=X.index)


def _differs(column: pd.Series, reference, categorical: bool) -> np.ndarray:
    """Rows whose value is not the training reference (their contribution is measured)."""
    if categorical:
        return np.asarray(column.astype(str) != str(reference))
    return ~np.isclose(column.to_numpy(dtype=float), float(reference), equal_nan=False)


def _slug(value: object) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")
    return text or "blank"


def _friendly_code(name: str, value: float, direction: str) -> str | None:
    """Readable names for the contract's main behaviour features; None = use the generic code."""
    if name == "activity_trend" and direction == "low":
        return "activity_down_50pct" if value <= -0.5 else "activity_down"
    if name == "activity_trend" and direction == "high":
        return "activity_up"
    if name == "days_since_last_active" and direction == "high":
        for days in (28, 14, 7):
            if value >= days:
                return f"inactive_{days}d"
        return "inactive_recently"
    if name == "reached_first_value" and value == 0:
        return "no_first_value_yet"
    if direction == "low" and value == 0:
        zero_codes = {
            "active_days_7d": "no_activity_7d",
            "active_days_28d": "no_activity_28d",
            "teammates_invited": "no_teammate_invited",
            "integrations_connected": "no_integration_connected",
            "sessions_7d": "no_sessions_7d",
        }
        if name in zero_codes:
            return zero_codes[name]
    if name == "onboarding_completion" and direction == "low":
        return "onboarding_incomplete"
    if name == "feature_breadth_28d" and direction == "low":
        return "few_features_used"
    if name == "support_tickets_28d" and direction == "high":
        return "many_support_tickets"
    return None


def reason_code(name: str, value: object, reference: object, spec: FeatureSpec) -> str:
    """Map a feature, the user's value and the training reference to one code."""
    if name in spec.categorical:
        return f"{name}_{_slug(value)}"
    number = float(value) if value is not None else float("nan")
    if np.isnan(number):
        return f"{name}_missing"
    direction = "high" if number > float(reference) else "low"
    friendly = _friendly_code(name, number, direction)
    if friendly:
        return friendly
    if name in spec.boolean:
        stem = name.removeprefix("reached_").removeprefix("is_").removeprefix("has_")
        return f"no_{stem}" if number == 0 else stem if stem != name else f"{name}_true"
    return f"{name}_{direction}"


def top_reasons(
    X: pd.DataFrame,
    spec: FeatureSpec,
    predict: Predict,
    top_k: int = 3,
    min_share_of_prediction: float = 0.05,
    candidates: tuple[str, ...] | list[str] | None = None,
    base: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long table of each user's top reasons: row, rank, feature, code, contribution.

    Only contributions pushing the user's prediction up by more than
    `min_share_of_prediction` of that prediction count (noise features stay out). The bar is
    per row, so a user's codes do not depend on who else is in the batch (scoring one day or
    a whole backfill gives the same codes). Two features mapping to one code count once.
    """
    names, codes, effects, kept = _ranked_codes(
        X, spec, predict, top_k, min_share_of_prediction, candidates, base
    )
    rows, position = np.nonzero(kept)
    ranks = np.cumsum(kept, axis=1)[rows, position]
    return pd.DataFrame(
        {
            "row": rows.astype(int),
            "rank": ranks.astype(int),
            "feature": names[rows, position] if len(rows) else np.array([], dtype=object),
            "code": codes[rows, position] if len(rows) else np.array([], dtype=object),
            "contribution": effects[rows, position].astype(float),
        },
        columns=["row", "rank", "feature", "code", "contribution"],
    )


def _ranked_codes(X, spec, predict, top_k, min_share_of_prediction, candidates, base):
    """(feature names, codes, contributions, kept) of each row's top 2 x top_k candidates by
    contribution, as (rows, 2 x top_k) matrices; `kept` marks the codes top_reasons keeps:
    above the row's bar, the first feature of each code, at most top_k."""
    base = predict(X) if base is None else np.asarray(base, dtype=float)
    contributions = feature_contributions(X, spec, predict, candidates, base)
    min_contribution = np.maximum(1e-6, min_share_of_prediction * np.abs(base))
    matrix = contributions.to_numpy()
    columns = np.asarray(contributions.columns, dtype=object)
    ranked = np.argsort(-matrix, axis=1, kind="stable")[:, : top_k * 2]
    effects = np.take_along_axis(matrix, ranked, axis=1)
    # Contributions fall along a row, so those above its bar are a prefix of it.
    above = effects > min_contribution[:, None]
    codes = np.full(ranked.shape, None, dtype=object)
    for column, name in enumerate(columns):
        cells = above & (ranked == column)
        if not cells.any():
            continue
        values = X[name].to_numpy(dtype=object)[np.nonzero(cells)[0]]
        # A code depends on (feature, value) alone: each distinct value is mapped once.
        distinct, inverse = _distinct(values)
        mapped = np.array(
            [reason_code(name, v, spec.reference[name], spec) for v in distinct], dtype=object
        )
        codes[cells] = mapped[inverse]
    kept = above.copy()
    for position in range(1, ranked.shape[1]):  # two features mapping to one code count once
        repeated = (codes[:, :position] == codes[:, [position]]).any(axis=1)
        kept[:, position] &= ~repeated
    kept &= np.cumsum(kept, axis=1) <= top_k
    return columns[ranked], codes, effects, kept


def _distinct(values: np.ndarray) -> tuple[list, np.ndarray]:
    """Distinct values (NaN once, in first-seen order) and each value's index among them."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    return list(uniques), codes


def reason_strings(
    X: pd.DataFrame,
    spec: FeatureSpec,
    predict: Predict,
    top_k: int = 3,
    candidates: tuple[str, ...] | list[str] | None = None,
    base: np.ndarray | None = None,
) -> pd.Series:
    """Comma-separated top codes per user (empty string when nothing pushes the score up)."""
    _, codes, _, kept = _ranked_codes(X, spec, predict, top_k, 0.05, candidates, base)
    return pd.Series(_joined(codes, kept), index=X.index, dtype=object)


def _joined(codes: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """ ",".join(row's kept codes) per row, joined once per distinct row of kept codes (a
    day's rows share a few thousand of them) and spread back by row."""
    if not len(codes):
        return np.empty(0, dtype=object)
    key = np.zeros(len(codes), dtype=np.int64)
    for position in range(codes.shape[1]):
        column = np.where(kept[:, position], codes[:, position], None)
        found, uniques = pd.factorize(column, use_na_sentinel=True)
        key = np.unique(key * (len(uniques) + 1) + found + 1, return_inverse=True)[1].ravel()
    first, inverse = np.unique(key, return_index=True, return_inverse=True)[1:]
    joined = [",".join(codes[row][kept[row]]) for row in first]
    return np.asarray(joined, dtype=object)[inverse.ravel()]
