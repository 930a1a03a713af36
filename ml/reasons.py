"""Reason codes: the features that push one user's prediction up, as readable codes.

Method (fast enough for every user daily): for each feature, replace the user's value by the
training reference (median or mode) and re-predict the whole batch once. The drop in the
prediction is that feature's contribution for that user; the top positive contributions
become codes. One batched predict per candidate feature (only the rows whose value differs
from the reference), so cost grows with candidates, not users x features. Models store their
candidates (`reason_features`: the most important features on the holdout), which keeps
scoring fast with wide feature tables; codes depend only on the user's own row. Codes are generic (`<feature>_high`, `<feature>_low`, `no_<milestone>`,
`<feature>_<category>`) with a small table of friendlier names for the contract's main
features.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml.features import FeatureSpec

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
    for name in names:
        reference = spec.reference[name]
        column = X[name]
        if name in spec.categorical:
            differs = column.astype(str) != str(reference)
        else:
            differs = ~np.isclose(column.to_numpy(dtype=float), float(reference), equal_nan=False)
        values = np.zeros(len(X))
        mask = np.asarray(differs)
        if mask.any():
            position = fast.numeric_position(name) if fast is not None else None
            if position is not None:  # a number transformed on its own: change its column
                changed_z = transformed[mask].copy()
                changed_z[:, position] = references[name]
                values[mask] = base[mask] - fast.predict_transformed(changed_z)
            else:
                changed = X.loc[mask].copy()
                changed[name] = reference
                values[mask] = base[mask] - predict(changed)
        contributions[name] = values
    return pd.DataFrame(contributions, index=X.index)


class PipelinePredict:
    """predict(X) for a fitted Pipeline(prep=ColumnTransformer, model=...) that also exposes the
    transformed matrix, so reason codes re-predict a changed numeric column without running
    the preprocessing again (numeric and boolean columns pass through unchanged)."""

    def __init__(self, pipeline, spec: FeatureSpec, proba: bool):
        self.prep = pipeline.named_steps["prep"]
        self.model = pipeline.named_steps["model"]
        self.proba = proba
        passthrough = list(spec.numeric + spec.boolean)
        start = self.prep.output_indices_["num"].start if passthrough else 0
        width = self.prep.output_indices_["num"].stop - start if passthrough else 0
        num = [t for name, t, cols in self.prep.transformers_ if name == "num"]
        numbers_kept = (
            len(num) == 1 and _per_column(num[0]) and width == len(passthrough)
        ) and any(
            name == "num" and list(columns) == passthrough
            for name, _, columns in self.prep.transformers_
        )
        self._raw = bool(num) and _unchanged(num[0])
        self._positions = (
            {name: start + i for i, name in enumerate(passthrough)} if numbers_kept else {}
        )

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """prep.transform(X), with each string-column transformer (the one-hot encoder: a
        Python dict lookup per value) run once per distinct combination of its columns and
        spread back by row: the same encoder on the same values, so the same matrix."""
        parts = self._parts()
        if parts is None or X.empty:
            return np.asarray(self.prep.transform(X), dtype=float)
        Z = np.empty((len(X), max(out.stop for _, _, out in parts)), dtype=float)
        for transformer, columns, out in parts:
            block = X[columns]
            if transformer == "passthrough":
                Z[:, out] = block.to_numpy(dtype=float)
            elif all(pd.api.types.is_object_dtype(dtype) for dtype in block.dtypes):
                codes = block.groupby(columns, sort=False, dropna=False).ngroup().to_numpy()
                first = np.unique(codes, return_index=True)[1]  # a row of each code, in order
                encoded = transformer.transform(block.iloc[first])
                Z[:, out] = np.asarray(encoded, dtype=float)[codes]
            else:
                Z[:, out] = np.asarray(transformer.transform(block), dtype=float)
        return Z

    def _parts(self) -> list[tuple[Any, list[str], slice]] | None:
        """(fitted transformer or "passthrough", its columns, its output slice) of each
        transformer that outputs columns; None when the layout is not the stock dense one."""
        if getattr(self.prep, "sparse_output_", False):
            return None
        parts = []
        for name, transformer, columns in self.prep.transformers_:
            out = self.prep.output_indices_.get(name)
            if transformer == "drop" or out is None or out.stop == out.start:
                continue
            if isinstance(columns, slice) or not all(isinstance(c, str) for c in columns):
                return None
            parts.append((transformer, list(columns), out))
        return parts

    def numeric_position(self, name: str) -> int | None:
        """The transformed column of numeric feature `name` (each number transformed on its
        own: passthrough, imputed, scaled), None when that does not hold."""
        return self._positions.get(name)

    def transformed_references(self, X: pd.DataFrame, references: dict) -> dict[str, float]:
        """The reference values of numeric features as the model sees them: one row of X with
        every reference set, transformed once (each number is transformed on its own, so this
        equals what re-transforming each changed row gives)."""
        names = [name for name in references if name in self._positions]
        if self._raw or not names or X.empty:
            return {name: float(references[name]) for name in names}
        row = X.iloc[[0]].copy()
        for name in names:
            row[name] = references[name]
        transformed = self.transform(row)[0]
        return {name: float(transformed[self._positions[name]]) for name in names}

    def predict_transformed(self, Z: np.ndarray) -> np.ndarray:
        linear = _row_exact_linear(self.model, Z)
        if linear is not None:
            return linear if self.proba else np.clip(linear, 0.0, None)
        if self.proba:
            return self.model.predict_proba(Z)[:, 1]
        return np.clip(self.model.predict(Z), 0.0, None)

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_transformed(self.transform(X))


def _unchanged(transformer) -> bool:
    return transformer == "passthrough" or getattr(transformer, "func", "no") is None


def _per_column(transformer) -> bool:
    """Whether each output column depends on its own input column only (so a changed number
    changes one transformed column): passthrough, imputers and scalers."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(transformer, Pipeline):
        return all(_per_column(step) for _, step in transformer.steps)
    if isinstance(transformer, SimpleImputer):
        return not transformer.add_indicator
    return _unchanged(transformer) or isinstance(transformer, StandardScaler)


def _row_exact_linear(model, Z: np.ndarray) -> np.ndarray | None:
    """A linear model's prediction computed row by row (elementwise product, then each row's
    own sum), None for other models. sklearn's matrix product (BLAS) gives a row a result
    that differs in the last bits with the batch it is in, which reordered near-tied reason
    codes between a user scored alone and in the day's batch. Trees predict row by row."""
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression, PoissonRegressor

    if isinstance(model, LogisticRegression) and model.coef_.shape[0] == 1:
        inverse_link = expit
    elif isinstance(model, PoissonRegressor):
        inverse_link = np.exp
    else:
        return None
    coef = np.ravel(model.coef_)
    intercept = float(np.ravel(model.intercept_)[0])
    linear = (np.ascontiguousarray(Z, dtype=float) * coef).sum(axis=1) + intercept
    return inverse_link(linear)


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
    base = predict(X) if base is None else np.asarray(base, dtype=float)
    contributions = feature_contributions(X, spec, predict, candidates, base)
    min_contribution = np.maximum(1e-6, min_share_of_prediction * np.abs(base))
    matrix = contributions.to_numpy()
    names = list(contributions.columns)
    ranked = np.argsort(-matrix, axis=1, kind="stable")[:, : top_k * 2]
    # Only the candidate columns, as objects (not the whole feature table); a code depends on
    # (feature, value) alone, so each distinct pair is mapped once.
    values = [X[name].to_numpy(dtype=object) for name in names]
    codes: dict[tuple[int, object], str] = {}
    rows: list[tuple[int, int, str, str, float]] = []
    for row_number, candidate_columns in enumerate(ranked):
        seen: set[str] = set()
        for column in candidate_columns:
            effect = matrix[row_number, column]
            if effect <= min_contribution[row_number] or len(seen) == top_k:
                break
            name = names[column]
            value = values[column][row_number]
            code = codes.get((column, value))
            if code is None:
                code = reason_code(name, value, spec.reference[name], spec)
                codes[(column, value)] = code
            if code in seen:
                continue
            seen.add(code)
            rows.append((row_number, len(seen), name, code, float(effect)))
    return pd.DataFrame(rows, columns=["row", "rank", "feature", "code", "contribution"])


def reason_strings(
    X: pd.DataFrame,
    spec: FeatureSpec,
    predict: Predict,
    top_k: int = 3,
    candidates: tuple[str, ...] | list[str] | None = None,
    base: np.ndarray | None = None,
) -> pd.Series:
    """Comma-separated top codes per user (empty string when nothing pushes the score up)."""
    reasons = top_reasons(X, spec, predict, top_k, candidates=candidates, base=base)
    codes: list[list[str]] = [[] for _ in range(len(X))]
    ordered = reasons.sort_values(["row", "rank"], kind="stable")
    for row, code in zip(ordered["row"].tolist(), ordered["code"].tolist(), strict=True):
        codes[row].append(code)
    return pd.Series([",".join(c) for c in codes], index=X.index, dtype=object)
