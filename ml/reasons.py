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
from ml.tree_reasons import Override, TreeScorer, Walked, tree_contributions

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
            if position is not None:  # a number transformed on its own: change its column
                override = fast.override_columns(transformed, [position], [references[name]])
                changed_z = None
            else:
                changed = X.loc[mask].copy()
                changed[name] = reference
                changed_z = fast.transform(changed)
                override = fast.override(transformed[mask], changed_z)
            if override is not None:  # the tree walk below, for all candidates at once
                overrides[name] = (mask, override)
                continue
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
        self._trees: TreeScorer | None = None
        self._trees_checked = False
        # The last __call__'s frame, matrix and tree walk: reason codes for the same frame reuse
        # them (the frame is held, so `is` cannot match another one; callers don't mutate it).
        self._last: tuple[pd.DataFrame, np.ndarray, Walked | None] | None = None

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """prep.transform(X), with each string-column transformer (the one-hot encoder: a
        Python dict lookup per value) run once per distinct combination of its columns and
        spread back by row: the same encoder on the same values, so the same matrix."""
        if self._last is not None and self._last[0] is X:
            return self._last[1]
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
        trees = self._tree_scorer(Z)
        if trees is not None:
            return trees.predict(Z)
        if self.proba:
            return self.model.predict_proba(Z)[:, 1]
        return np.clip(self.model.predict(Z), 0.0, None)

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        Z = self.transform(X)
        trees = self._tree_scorer(Z)
        if trees is None:
            self._last = (X, Z, None)
            return self.predict_transformed(Z)
        walked = trees.walked(Z)
        self._last = (X, Z, walked)
        return trees.predict_walked(walked)

    def _tree_scorer(self, Z: np.ndarray) -> TreeScorer | None:
        """The boosted model's exact tree walker (ml.tree_reasons), checked once on Z."""
        if not self._trees_checked and len(Z):
            from sklearn.base import is_classifier

            self._trees_checked = True
            if is_classifier(self.model) == self.proba:
                self._trees = TreeScorer.for_model(self.model, Z)
        return self._trees

    def override_columns(self, Z: np.ndarray, columns: list[int], values: list) -> Override | None:
        """Columns of Z set to one value in every row, for the tree walk (None without one)."""
        trees = self._tree_scorer(Z)
        return trees.override(columns, values) if trees is not None else None

    def override(self, before: np.ndarray, after: np.ndarray) -> Override | None:
        """`after` as `before` with some columns set to one value in every row (what a
        feature at its reference is to the trees), or None (no tree walker, or the change
        differs by row)."""
        trees = self._tree_scorer(before)
        if trees is None:
            return None
        differs = ~((before == after) | (np.isnan(before) & np.isnan(after)))
        columns = np.flatnonzero(differs.any(axis=0))
        values = after[0, columns]
        if not np.all(
            (after[:, columns] == values) | (np.isnan(after[:, columns]) & np.isnan(values))
        ):
            return None
        return trees.override(columns, values)

    def contributions(
        self, X: pd.DataFrame, base: np.ndarray, overrides: dict
    ) -> dict[str, np.ndarray]:
        """Each override's contributions by the exact tree walk (ml.tree_reasons)."""
        Z = self.transform(X)
        trees = self._tree_scorer(Z)
        walked = self._last[2] if self._last is not None and self._last[0] is X else None
        walked = walked if walked is not None else trees.walked(Z)
        return tree_contributions(trees, walked, base, overrides)


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
    joined = [
        ",".join(row_codes[row_kept]) for row_codes, row_kept in zip(codes, kept, strict=True)
    ]
    return pd.Series(joined, index=X.index, dtype=object)
