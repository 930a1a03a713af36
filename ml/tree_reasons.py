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
code, so a changed row's prediction is the float scikit-learn would return for it. Walks read
the booster's own bins (x <= a split's threshold exactly when bin(x) <= its bin: the same
leaves, from a matrix 8x smaller). Rows are independent (per-row sums, elementwise links), so
a user's codes do not depend on the batch. `TreeScorer.for_model` verifies this on a sample
and declines (the caller re-predicts) when the estimator is of another shape or the sample
differs in any bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows per block: walks and sums over a block stay in the cache.
BLOCK_ROWS = 2048
CHECK_ROWS = 256


@dataclass(frozen=True)
class Override:
    """Columns set to fixed values (as bins), with each node's restart (TreeScorer.restarts)."""

    columns: np.ndarray
    bins: np.ndarray
    restart: np.ndarray


@dataclass(frozen=True)
class Walked:
    """A matrix as the trees see it: its bins and each row's leaf (global node id) per tree."""

    bins: np.ndarray
    leaves: np.ndarray


class TreeScorer:
    """One fitted HistGradientBoosting model (plain, or calibrated with ensemble=False) as
    flat node arrays: predictions from leaf ids, and predictions of rows with a few columns
    set to reference values."""

    def __init__(self, booster, finish):
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        self._finish = finish  # raw scores (n,) -> the model's prediction
        self._binner = booster._bin_mapper
        self._missing = int(self._binner.missing_values_bin_idx_)
        trees = [iteration[0] for iteration in booster._predictors]
        self._baseline = booster._baseline_prediction.ravel()[0]
        sizes = np.array([len(t.nodes) for t in trees])
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        nodes = np.concatenate([t.nodes for t in trees])
        owner = np.repeat(np.arange(len(trees)), sizes)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.bin_threshold = nodes["bin_threshold"].astype(np.int16)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.is_leaf = nodes["is_leaf"].astype(bool)
        self.left = nodes["left"].astype(np.intp) + self.offsets[owner]
        self.right = nodes["right"].astype(np.intp) + self.offsets[owner]
        # The walk's step tables. A leaf loops to itself, so walks need no per-level exits.
        # A node reads bins from the low copy (missing = -1: goes left) when missing values
        # go left, else from the high copy (missing = 256: goes right), so one compare
        # against its bin threshold decides.
        leaf_ids = np.flatnonzero(self.is_leaf)
        self.children = np.stack([self.right, self.left])  # [goes_left, node]
        self.children[:, leaf_ids] = leaf_ids
        self.reads_low = self.missing_left & ~self.is_leaf
        self.value = nodes["value"].astype(float)
        self.depth = nodes["depth"].astype(np.intp)
        # Leaf-id walkers: scikit-learn's own walk, with each node's value set to its index.
        self._walkers = []
        for tree in trees:
            indexed = tree.nodes.copy()
            indexed["value"] = np.arange(len(indexed), dtype=float)
            self._walkers.append(
                TreePredictor(indexed, tree.binned_left_cat_bitsets, tree.raw_left_cat_bitsets)
            )

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

    def walked(self, Z: np.ndarray) -> Walked:
        """Z's bins and each row's leaf in each tree, a block of rows at a time."""
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        threads = _openmp_effective_n_threads()
        bins = np.ascontiguousarray(self._binner.transform(np.asarray(Z, dtype=float)))
        leaves = np.empty((len(Z), len(self._walkers)), dtype=np.int32)
        for start in range(0, len(Z), BLOCK_ROWS):
            block = bins[start : start + BLOCK_ROWS]
            for t, walker in enumerate(self._walkers):
                local = walker.predict_binned(block, self._missing, threads)
                leaves[start : start + len(block), t] = local.astype(np.int32) + self.offsets[t]
        return Walked(bins, leaves)

    def values(self, leaves: np.ndarray) -> np.ndarray:
        """(rows, 1 + trees), C order: the baseline, then each tree's leaf value."""
        out = np.empty((len(leaves), leaves.shape[1] + 1))
        out[:, 0] = self._baseline
        out[:, 1:] = self.value[leaves]
        return out

    def finish(self, values: np.ndarray) -> np.ndarray:
        """The predictions of rows of `values`: baseline + tree 1 + tree 2 ..., summed in the
        estimator's order (a cumulative sum is sequential: bit-exact), then its link."""
        return self._finish(np.cumsum(values, axis=1, out=values)[:, -1])

    def predict_walked(self, walked: Walked) -> np.ndarray:
        out = np.empty(len(walked.leaves))
        for start in range(0, len(out), BLOCK_ROWS):
            block = slice(start, start + BLOCK_ROWS)
            out[block] = self.finish(self.values(walked.leaves[block]))
        return out

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.predict_walked(self.walked(Z))

    def override(self, columns, values) -> Override:
        """`columns` of the transformed matrix set to `values` in every row."""
        columns = np.asarray(columns, dtype=np.intp)
        row = np.zeros((1, self._binner.n_bins_non_missing_.shape[0]))
        row[0, columns] = values
        bins = self._binner.transform(row)[0, columns].astype(np.int16)
        return Override(columns, bins, self.restarts(columns, bins))

    def restarts(self, columns: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """Per node: where a row that reached this node continues once `columns` hold
        `bins`: -1 while the path so far is unchanged, else the node of the first split
        where the reference turns the other way (inherited down the subtree)."""
        fixed = np.full(len(self.feature), -1, dtype=np.int16)
        split = ~self.is_leaf
        for column, value in zip(columns, bins, strict=True):
            fixed[split & (self.feature == column)] = value
        changed = fixed >= 0
        goes_left = np.where(fixed == self._missing, self.missing_left, fixed <= self.bin_threshold)
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

    def walk(self, bins: np.ndarray, rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Walk each (row of `bins`, node) down to its leaf."""
        width = bins.shape[1]
        wide = bins.astype(np.int16)
        high = np.where(bins == self._missing, 256, wide).ravel()
        low = np.where(bins == self._missing, -1, wide).ravel()
        both = np.concatenate([high, low])
        # Per node: where its bin sits in `both` (less the row's offset), and its threshold.
        column = self.feature + self.reads_low * high.size
        threshold = np.where(self.is_leaf, 0, self.bin_threshold)
        nodes = nodes.astype(np.intp)
        result = np.empty(len(rows), dtype=np.intp)
        pending = np.arange(len(rows))
        offset = rows * width
        while len(pending):
            for _ in range(4):
                goes_left = both[offset + column[nodes]] <= threshold[nodes]
                nodes = self.children[goes_left.view(np.int8), nodes]
            done = self.is_leaf[nodes]
            result[pending[done]] = nodes[done]
            pending, offset, nodes = pending[~done], offset[~done], nodes[~done]
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
    walked: Walked,
    base: np.ndarray,
    overrides: dict[str, tuple[np.ndarray, Override]],
) -> dict[str, np.ndarray]:
    """Per candidate name: base - prediction with its override, on the rows of its mask (0
    elsewhere: as re-predicting the masked rows gives). A block of rows at a time (bounded
    memory); the (row, tree) pairs that restart for any candidate are found in one pass,
    from a bit per candidate on each leaf."""
    names = list(overrides)
    n = len(walked.leaves)
    out = {name: np.zeros(n) for name in names}
    for group in range(0, len(names), 64):
        chosen = names[group : group + 64]
        bits = np.zeros(len(scorer.value), dtype=np.uint64)
        for i, name in enumerate(chosen):
            bits |= (overrides[name][1].restart >= 0).astype(np.uint64) << np.uint64(i)
        for start in range(0, n, BLOCK_ROWS):
            block = slice(start, start + BLOCK_ROWS)
            leaves = walked.leaves[block]
            restarting = bits[leaves]
            pair_rows, pair_trees = np.nonzero(restarting)
            pair_bits = restarting[pair_rows, pair_trees]
            values = scorer.values(leaves)
            for i, name in enumerate(chosen):
                mask, override = overrides[name]
                hit = ((pair_bits >> np.uint64(i)) & np.uint64(1)).astype(bool)
                take = np.flatnonzero(hit & mask[block][pair_rows])
                if len(take):
                    rows, changed = _changed_rows(
                        scorer, walked.bins[block], leaves, values, override, pair_rows[take],
                        pair_trees[take],
                    )  # fmt: skip
                    out[name][rows + start] = base[rows + start] - scorer.finish(changed)
    return out


def _changed_rows(scorer, bins, leaves, values, override, rows, trees):
    """The rows of these restarting (row, tree) pairs and their leaf values with the
    override: each pair walked again from its restart node in a copy of the bins."""
    changed_bins = bins.copy()
    changed_bins[:, override.columns] = override.bins
    starts = override.restart[leaves[rows, trees]]
    new_leaves = scorer.walk(changed_bins, rows, starts)
    # Pairs come row by row (nonzero's order): a new row starts where the row changes.
    starts_row = np.r_[True, rows[1:] != rows[:-1]]
    changed = values[rows[starts_row]]
    changed[np.cumsum(starts_row) - 1, trees + 1] = scorer.value[new_leaves]
    return rows[starts_row], changed
