"""The stock segflow pipeline (ColumnTransformer `prep` + `model`) predicted from its
transformed matrix, so reason codes re-predict a changed column without running the
preprocessing again, and a boosted model's changed rows go through the exact tree walk
(ml.tree_reasons) instead of re-predicting every tree.

Separate from ml.reasons (which turns contributions into codes): this module only knows how
to predict a pipeline fast and exactly as scikit-learn does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.fast_bins import BinPlan, FeatureColumns, one_hot_widths
from ml.features import FeatureSpec, prepare_features
from ml.tree_reasons import CHECK_ROWS, Override, TreeScorer, Walked, tree_contributions


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
        self.spec = spec
        self._trees: TreeScorer | None = None
        self._trees_checked = False
        self._plan: BinPlan | None = None
        self._plan_checked = False
        # The last __call__'s frame, matrix and tree walk: reason codes for the same frame reuse
        # them (the frame is held, so `is` cannot match another one; callers don't mutate it).
        self._last: tuple[pd.DataFrame, np.ndarray, Walked | None] | None = None

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """prep.transform(X), part by part (`_part`: a string-column transformer runs once per
        distinct combination of its columns)."""
        if self._last is not None and self._last[0] is X:
            return self._last[1]
        parts = self._parts()
        if parts is None or X.empty:
            return np.asarray(self.prep.transform(X), dtype=float)
        Z = np.empty((len(X), max(out.stop for _, _, out in parts)), dtype=float)
        for transformer, columns, out in parts:
            Z[:, out] = _part(transformer, X[columns])
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

    def scores(self, X: pd.DataFrame) -> np.ndarray:
        """predict(X) when no reason codes follow: nothing kept for them (a boosted model's
        leaves are not stored), the same numbers."""
        self._last = None
        return self.predict_transformed(self.transform(X))

    def forget(self) -> None:
        """Drop the last call's frame, matrix and walk (reason codes are done with them)."""
        self._last = None

    def scores_of(self, columns: FeatureColumns, take: np.ndarray | None = None) -> np.ndarray:
        """`scores` of the rows of `columns` (or those at `take`) without preparing or
        transforming them: a boosted model's bins come from the columns (ml.fast_bins),
        checked once against scikit-learn's transform; any other model is prepared."""
        rows = columns.rows if take is None else columns.rows.take(take)
        plan = self._checked_plan(columns, take)
        if plan is None:
            return self.scores(prepare_features(rows, self.spec))
        self._last = None
        bins = plan.bins(columns, take).T
        return self._trees.predict_walked(self._trees.walked(None, False, bins))

    def _checked_plan(self, columns: FeatureColumns, take: np.ndarray | None) -> BinPlan | None:
        """The bin plan, built on first use and kept when its bins of the first CHECK_ROWS
        rows equal the booster's bins of scikit-learn's transform of them (and the tree
        walker exists: TreeScorer.for_model checks it on the same rows)."""
        if self._plan_checked:
            return self._plan
        picked = np.arange(len(columns.rows)) if take is None else np.asarray(take)
        sample = columns.rows.take(picked[:CHECK_ROWS])
        if not len(sample):
            return None
        self._plan_checked = True
        Z = self.transform(prepare_features(sample, self.spec))
        trees = self._tree_scorer(Z)
        if trees is None:
            return None
        plan = BinPlan.build(self.prep, trees._binner, self.spec)
        if plan is not None and np.array_equal(
            plan.bins(FeatureColumns(sample)).T, trees._binner.transform(Z)
        ):
            self._plan = plan
        return self._plan

    def with_columns(self, X: pd.DataFrame, columns: FeatureColumns) -> np.ndarray:
        """self(X) for X = columns.frame(spec), the walk's bins from the columns (the bin
        plan, ml.fast_bins) instead of binning the transformed matrix: the same bins."""
        plan = self._checked_plan(columns, None)
        if plan is None:
            return self(X)
        Z = self.transform(X)
        bins = np.ascontiguousarray(plan.bins(columns).T)  # rows x features: restarts read rows
        walked = self._trees.walked(None, True, bins)
        self._last = (X, Z, walked)
        return self._trees.predict_walked(walked)

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

    def override_feature(
        self, X: pd.DataFrame, Z: np.ndarray, mask: np.ndarray, name: str, reference
    ) -> Override | None:
        """`override(Z[mask], transform(X[mask] with `name` at `reference`))` without
        transforming whole rows again: only the transformers that read `name` run, on their
        own columns of those rows (a ColumnTransformer's part sees only its columns, so the
        others' outputs are Z's). None without a tree walker or a stock layout."""
        trees = self._tree_scorer(Z)
        parts = self._parts()
        if trees is None or parts is None:
            return None
        rows = np.flatnonzero(mask)
        befores, afters = [], []
        for transformer, columns, out in parts:
            if name in columns:
                block = X[columns].take(rows)
                block[name] = reference
                afters.append(_part(transformer, block))
                befores.append(Z[rows[:, None], np.arange(out.start, out.stop)])
        if not afters:
            return None
        reading = [out for _, columns, out in parts if name in columns]
        positions = np.concatenate([np.arange(out.start, out.stop) for out in reading])
        return self._override(trees, np.hstack(befores), np.hstack(afters), positions)

    @staticmethod
    def _override(trees, before, after, positions) -> Override | None:
        """The override setting the columns (at `positions` of the matrix) where `after`
        differs from `before`, when each is one value in every row; else None."""
        differs = ~((before == after) | (np.isnan(before) & np.isnan(after)))
        columns = np.flatnonzero(differs.any(axis=0))
        values = after[0, columns]
        if not np.all(
            (after[:, columns] == values) | (np.isnan(after[:, columns]) & np.isnan(values))
        ):
            return None
        return trees.override(positions[columns], values)

    def contributions(
        self, X: pd.DataFrame, base: np.ndarray, overrides: dict
    ) -> dict[str, np.ndarray]:
        """Each override's contributions by the exact tree walk (ml.tree_reasons)."""
        Z = self.transform(X)
        trees = self._tree_scorer(Z)
        walked = self._last[2] if self._last is not None and self._last[0] is X else None
        walked = walked if walked is not None else trees.walked(Z)
        return tree_contributions(trees, walked, base, overrides)


def _part(transformer, block: pd.DataFrame) -> np.ndarray:
    """One ColumnTransformer part's output on `block` (its columns), as floats; a
    string-column transformer (the one-hot encoder: a Python dict lookup per value) runs
    once per distinct value of each column (a one-hot encoder: each column owns its output
    block) or per distinct combination of its columns (any other), spread back by row: the
    same encoder on the same values, so the same matrix."""
    if transformer == "passthrough":
        return block.to_numpy(dtype=float)
    widths = one_hot_widths(transformer, block.shape[1], None)
    strings = all(pd.api.types.is_object_dtype(dtype) for dtype in block.dtypes)
    if widths is not None and strings and len(block):
        return _one_hot_part(transformer, block, widths)
    if strings:
        columns = list(block.columns)
        codes = block.groupby(columns, sort=False, dropna=False).ngroup().to_numpy()
        first = np.unique(codes, return_index=True)[1]  # a row of each code, in order
        encoded = transformer.transform(block.iloc[first])
        return np.asarray(encoded, dtype=float)[codes]
    return np.asarray(transformer.transform(block), dtype=float)


def _one_hot_part(encoder, block: pd.DataFrame, widths: list[int]) -> np.ndarray:
    """A fitted one-hot encoder's output on `block`, each column's own output block from its
    distinct values (encoded once, as rows of one frame), spread back by row."""
    codes = [
        pd.factorize(block[name].to_numpy(dtype=object), use_na_sentinel=False)
        for name in block.columns
    ]
    depth = max(len(uniques) for _, uniques in codes)
    frame = {
        name: np.concatenate([uniques, np.repeat(uniques[:1], depth - len(uniques))])
        for name, (_, uniques) in zip(block.columns, codes, strict=True)
    }
    encoded = np.asarray(encoder.transform(pd.DataFrame(frame, columns=block.columns)), float)
    out = np.empty((len(block), sum(widths)))
    start = 0
    for (row_codes, _), width in zip(codes, widths, strict=True):
        out[:, start : start + width] = encoded[row_codes, start : start + width]
        start += width
    return out


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
