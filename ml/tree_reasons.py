"""Exact reason-code predictions for histogram gradient boosting, without re-predicting.

A reason code's contribution is prediction(user) - prediction(user with one feature at its
reference). Re-predicting that changed row walks every tree again: with ~300-tree champions a
100k-user day cost ~90 CPU s for 2 x 12 candidates. But a tree's leaf can change only when
the row's path passes a node that splits on the changed columns *and* the reference goes the
other way there. That is a property of the leaf alone (the path to a leaf is fixed), so each
leaf gets a restart node per candidate, and only the (row, tree) pairs whose leaf restarts are
walked again, from that node, with the reference values in the changed columns.

Bit-exact with scikit-learn: each row's raw score is summed tree by tree in the estimator's
own order (baseline + tree 1 + tree 2 ...), and the link / calibration is the estimator's own
code, so a changed row's prediction is the float scikit-learn would return for it. Rows are
independent (per-row sums, elementwise links), so a user's codes do not depend on the batch.
`TreeScorer.for_model` verifies this on a sample and declines (the caller re-predicts) when
the estimator is of another shape or the sample differs in any bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows per block: the leaf walks stream the feature matrix once per tree; a block that fits
# in the cache halves the cost of the walks over the whole day's matrix.
BLOCK_ROWS = 8192
CHECK_ROWS = 256


@dataclass(frozen=True)
class Override:
    """Columns set to fixed values, with each node's restart (TreeScorer.restarts)."""

    columns: np.ndarray
    values: np.ndarray
    restart: np.ndarray


class TreeScorer:
    """One fitted HistGradientBoosting model (plain, or calibrated with ensemble=False) as
    flat node arrays: predictions from leaf ids, and predictions of rows with a few columns
    set to reference values."""

    def __init__(self, booster, finish):
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        self._booster = booster
        self._finish = finish  # raw scores (n,) -> the model's prediction
        trees = [iteration[0] for iteration in booster._predictors]
        self._baseline = booster._baseline_prediction.ravel()[0]
        sizes = np.array([len(t.nodes) for t in trees])
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        nodes = np.concatenate([t.nodes for t in trees])
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(float)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.is_leaf = nodes["is_leaf"].astype(bool)
        owner = np.repeat(np.arange(len(trees)), sizes)
        self.left = nodes["left"].astype(np.intp) + self.offsets[owner]
        self.right = nodes["right"].astype(np.intp) + self.offsets[owner]
        self.value = nodes["value"].astype(float)
        self.depth = nodes["depth"].astype(np.intp)
        self.owner = owner
        # Leaf-id walkers: the same Cython walk, with each node's value set to its index.
        self._walkers = []
        for tree in trees:
            indexed = tree.nodes.copy()
            indexed["value"] = np.arange(len(indexed), dtype=float)
            self._walkers.append(
                TreePredictor(indexed, tree.binned_left_cat_bitsets, tree.raw_left_cat_bitsets)
            )
        self._bitsets = booster._bin_mapper.make_known_categories_bitsets()

    @classmethod
    def for_model(cls, model, Z: np.ndarray) -> TreeScorer | None:
        """The scorer of `model` (a booster, or CalibratedClassifierCV over one), or None when
        it is another shape or its predictions on a sample of `Z` differ from the model's."""
        made = _scorer(model)
        if made is None or not len(Z):
            return made
        sample = np.ascontiguousarray(Z[:CHECK_ROWS], dtype=float)
        expected = _model_output(model, sample)
        if not np.array_equal(made.predict(sample), expected, equal_nan=True):
            return None
        return made

    def leaves(self, Z: np.ndarray) -> np.ndarray:
        """Global node id of each row's leaf in each tree: (rows, trees)."""
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        threads = _openmp_effective_n_threads()
        known, index = self._bitsets
        out = np.empty((len(Z), len(self._walkers)), dtype=np.int32, order="F")
        for start in range(0, len(Z), BLOCK_ROWS):
            block = np.ascontiguousarray(Z[start : start + BLOCK_ROWS], dtype=float)
            for t, walker in enumerate(self._walkers):
                local = walker.predict(block, known, index, threads)
                out[start : start + len(block), t] = local.astype(np.int32) + self.offsets[t]
        return out

    def values(self, leaves: np.ndarray) -> np.ndarray:
        """(rows, 1 + trees), C order: the baseline, then each tree's leaf value."""
        out = np.empty((len(leaves), leaves.shape[1] + 1))
        out[:, 0] = self._baseline
        out[:, 1:] = self.value[leaves]
        return out

    def finish(self, values: np.ndarray) -> np.ndarray:
        """The predictions of rows of `values`: baseline + tree 1 + tree 2 ..., summed in the
        estimator's order (a cumulative sum is sequential: bit-exact), then its link."""
        return self._finish(np.cumsum(values, axis=1)[:, -1])

    def predict_leaves(self, leaves: np.ndarray) -> np.ndarray:
        out = np.empty(len(leaves))
        for start in range(0, len(leaves), BLOCK_ROWS):
            block = slice(start, start + BLOCK_ROWS)
            out[block] = self.finish(self.values(leaves[block]))
        return out

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.predict_leaves(self.leaves(Z))

    def override(self, columns, values) -> Override:
        columns = np.asarray(columns, dtype=np.intp)
        values = np.asarray(values, dtype=float)
        return Override(columns, values, self.restarts(columns, values))

    def restarts(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per node: where a row that reached this node continues once `columns` hold
        `values`: -1 while the path so far is unchanged, else the node of the first split
        where the reference turns the other way (inherited down the subtree)."""
        override = np.full(len(self.feature), np.nan)
        changed = np.zeros(len(self.feature), dtype=bool)
        split = ~self.is_leaf
        for column, value in zip(columns, values, strict=True):
            at = split & (self.feature == column)
            changed |= at
            override[at] = value
        goes_left = np.where(np.isnan(override), self.missing_left, override <= self.threshold)
        turn = np.where(goes_left, self.right, self.left)  # the child the row took instead
        other = np.where(goes_left, self.left, self.right)  # where the reference goes
        restart = np.full(len(self.feature), -1, dtype=np.intp)
        for depth in range(int(self.depth.max())):
            parents = np.flatnonzero(split & (self.depth == depth))
            inherited = restart[parents]
            for child in (self.left[parents], self.right[parents]):
                diverts = changed[parents] & (child == turn[parents])
                restart[child] = np.where(
                    inherited >= 0, inherited, np.where(diverts, other[parents], -1)
                )
        return restart

    def walk(self, Z, rows, nodes, override: Override) -> np.ndarray:
        """Walk each (row, node) down to its leaf, reading the override's values for its
        columns."""
        fixed = np.zeros(Z.shape[1], dtype=bool)
        fixed[override.columns] = True
        replaced = np.zeros(Z.shape[1])
        replaced[override.columns] = override.values
        result = np.empty(len(rows), dtype=np.intp)
        pending = np.arange(len(rows))
        while len(pending):
            at_leaf = self.is_leaf[nodes]
            result[pending[at_leaf]] = nodes[at_leaf]
            pending, rows, nodes = pending[~at_leaf], rows[~at_leaf], nodes[~at_leaf]
            feature = self.feature[nodes]
            x = np.where(fixed[feature], replaced[feature], Z[rows, feature])
            left = np.where(np.isnan(x), self.missing_left[nodes], x <= self.threshold[nodes])
            nodes = np.where(left, self.left[nodes], self.right[nodes])
        return result


def _scorer(model) -> TreeScorer | None:
    """A TreeScorer for the shapes segflow trains, None for any other estimator."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if isinstance(model, CalibratedClassifierCV):
        members = getattr(model, "calibrated_classifiers_", [])
        if len(members) != 1 or len(members[0].calibrators) != 1:
            return None
        member = members[0]
        booster = member.estimator
        if not isinstance(booster, HistGradientBoostingClassifier) or len(member.classes) != 2:
            return None
        calibrator = member.calibrators[0]
        # CalibratedClassifierCV.predict_proba: the mean over its one member, as it sums it.
        return _checked(booster, lambda raw: (0.0 + calibrator.predict(raw)) / 1)
    if isinstance(model, HistGradientBoostingClassifier):
        if len(model.classes_) != 2:
            return None
        return _checked(model, lambda raw: model._loss.predict_proba(raw[:, None])[:, 1])
    if isinstance(model, HistGradientBoostingRegressor):
        return _checked(model, lambda raw: np.clip(model._loss.link.inverse(raw), 0.0, None))
    return None


def _checked(booster, finish) -> TreeScorer | None:
    if booster.n_trees_per_iteration_ != 1:
        return None
    if any(p[0].nodes["is_categorical"].any() for p in booster._predictors):
        return None  # native categorical splits: bitset walks (not needed by segflow's models)
    return TreeScorer(booster, finish)


def _model_output(model, Z: np.ndarray) -> np.ndarray:
    """What PipelinePredict.predict_transformed returns for these models."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    if isinstance(model, HistGradientBoostingRegressor):
        return np.clip(model.predict(Z), 0.0, None)
    return model.predict_proba(Z)[:, 1]


def tree_contributions(
    scorer: TreeScorer,
    Z: np.ndarray,
    leaves: np.ndarray,
    base: np.ndarray,
    overrides: dict[str, tuple[np.ndarray, Override]],
) -> dict[str, np.ndarray]:
    """Per candidate name: base - prediction with its override, on the rows of its mask (0
    elsewhere: as re-predicting the masked rows gives). A block of rows at a time (bounded
    memory); the (row, tree) pairs that restart for any candidate are found in one pass,
    from a bit per candidate on each leaf."""
    names = list(overrides)
    out = {name: np.zeros(len(Z)) for name in names}
    for group in range(0, len(names), 64):
        chosen = names[group : group + 64]
        bits = np.zeros(len(scorer.value), dtype=np.uint64)
        for i, name in enumerate(chosen):
            bits |= (overrides[name][1].restart >= 0).astype(np.uint64) << np.uint64(i)
        for start in range(0, len(Z), BLOCK_ROWS):
            block = slice(start, start + BLOCK_ROWS)
            block_leaves = np.ascontiguousarray(leaves[block])
            restarting = bits[block_leaves]
            pair_rows, pair_trees = np.nonzero(restarting)
            pair_bits = restarting[pair_rows, pair_trees]
            values = scorer.values(block_leaves)
            for i, name in enumerate(chosen):
                mask, override = overrides[name]
                take = np.flatnonzero((pair_bits >> np.uint64(i)) & np.uint64(1))
                rows, trees = pair_rows[take], pair_trees[take]
                if not len(rows):
                    continue
                starts = override.restart[block_leaves[rows, trees]]
                new_leaves = scorer.walk(Z[block], rows, starts, override)
                # Pairs come row by row (nonzero's order): each row's first pair starts it.
                first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
                changed = values[rows[first]]
                changed[np.cumsum(np.r_[False, rows[1:] != rows[:-1]]), trees + 1] = scorer.value[
                    new_leaves
                ]
                day_rows = rows[first] + start
                keep = mask[day_rows]
                predicted = scorer.finish(changed[keep])
                out[name][day_rows[keep]] = base[day_rows[keep]] - predicted
    return out
