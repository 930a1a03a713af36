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
code, so a changed row's prediction is the float scikit-learn would return for it. Leaves are
kept tree-major (trees x rows), so that sum runs across a block of rows one tree at a time
(vector adds, ~8x faster than a running sum along each row; the same additions in the same
order). Walks read
the booster's own bins (x <= a split's threshold exactly when bin(x) <= its bin: the same
leaves, from a matrix 8x smaller). Rows are independent (per-row sums, elementwise links), so
a user's codes do not depend on the batch. `TreeScorer.for_model` verifies this on a sample
and declines (the caller re-predicts) when the estimator is of another shape or the sample
differs in any bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml import row_blocks

# Rows per block: a block's leaf values (trees x rows) and walks stay within a few MB.
BLOCK_ROWS = 4096
CHECK_ROWS = 256


@dataclass(frozen=True)
class Override:
    """Columns set to fixed values (as bins), with each node's restart (TreeScorer.restarts)."""

    columns: np.ndarray
    bins: np.ndarray
    restart: np.ndarray


@dataclass(frozen=True)
class Walked:
    """A matrix as the trees see it: its bins (rows, columns) and each row's leaf (global node
    id) in each tree, tree-major (trees, rows): sums run across rows, one tree at a time."""

    bins: np.ndarray
    leaves: np.ndarray


class TreeScorer:
    """One fitted HistGradientBoosting model (plain, or calibrated with ensemble=False) as
    flat node arrays: predictions from leaf ids, and predictions of rows with a few columns
    set to reference values. Blocks of rows run on the threads `ml.row_blocks.limit` allows."""

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
        self.threshold = np.where(self.is_leaf, 0, self.bin_threshold)
        self.value = nodes["value"].astype(float)
        self.depth = nodes["depth"].astype(np.intp)
        self._trees = trees  # scikit-learn's own walkers (leaf values)
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
        for output in (made.predict(sample), made.predict_walked(made.walked(sample))):
            if not np.array_equal(output, expected, equal_nan=True):
                return None
        return made

    def walked(self, Z: np.ndarray) -> Walked:
        """Z's bins and each row's leaf in each tree, a block of rows at a time."""
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        Z = np.asarray(Z, dtype=float)
        threads = _openmp_effective_n_threads() if row_blocks.workers() == 1 else 1
        bins = np.empty(Z.shape, dtype=np.uint8)
        leaves = np.empty((len(self._walkers), len(Z)), dtype=np.int32)

        def block(start: int, stop: int) -> None:
            bins[start:stop] = self._binner.transform(Z[start:stop])
            part = bins[start:stop]
            for t, walker in enumerate(self._walkers):
                leaves[t, start:stop] = walker.predict_binned(part, self._missing, threads)
                leaves[t, start:stop] += self.offsets[t]

        row_blocks.each_block(len(Z), BLOCK_ROWS, block)
        return Walked(bins, leaves)

    def finish(self, values: np.ndarray) -> np.ndarray:
        """The predictions of the columns of `values` (trees, rows) of leaf values: baseline +
        tree 1 + tree 2 ..., added in the estimator's order (bit-exact with its own sum),
        then its link."""
        raw = np.full(values.shape[1], self._baseline)
        for tree in values:
            raw += tree
        return self._finish(raw)

    def predict_walked(self, walked: Walked) -> np.ndarray:
        out = np.empty(walked.leaves.shape[1])

        def block(start: int, stop: int) -> None:
            out[start:stop] = self.finish(self.value[walked.leaves[:, start:stop]])

        row_blocks.each_block(len(out), BLOCK_ROWS, block)
        return out

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """The predictions of Z without keeping leaves (scores alone: no reason codes):
        scikit-learn's walks return leaf values, added in the same order."""
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        Z = np.asarray(Z, dtype=float)
        threads = _openmp_effective_n_threads() if row_blocks.workers() == 1 else 1
        out = np.empty(len(Z))

        def block(start: int, stop: int) -> None:
            bins = np.ascontiguousarray(self._binner.transform(Z[start:stop]))
            raw = np.full(stop - start, self._baseline)
            for tree in self._trees:
                raw += tree.predict_binned(bins, self._missing, threads)
            out[start:stop] = self._finish(raw)

        row_blocks.each_block(len(Z), BLOCK_ROWS, block)
        return out

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

    def comparable(self, bins: np.ndarray) -> np.ndarray:
        """(2, rows, columns) int16: the bins as the walk compares them, missing as 256 (the
        high copy: goes right) and as -1 (the low copy: goes left)."""
        wide = bins.astype(np.int16)
        missing = bins == self._missing
        return np.stack([np.where(missing, 256, wide), np.where(missing, -1, wide)])

    def overridden(self, compared: np.ndarray, override: Override) -> np.ndarray:
        """A copy of `compared` (TreeScorer.comparable) with the override's columns set."""
        out = compared.copy()
        fixed = override.bins == self._missing
        out[0][:, override.columns] = np.where(fixed, 256, override.bins)
        out[1][:, override.columns] = np.where(fixed, -1, override.bins)
        return out

    def walk(self, compared: np.ndarray, rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Walk each (row of `compared` (TreeScorer.comparable), node) down to its leaf."""
        _, height, width = compared.shape
        both = compared.ravel()
        # Per node: where its bin sits in `both` (less the row's offset).
        column = self.feature + self.reads_low * (height * width)
        nodes = nodes.astype(np.intp)
        result = np.empty(len(rows), dtype=np.intp)
        pending = np.arange(len(rows))
        offset = rows * width
        while len(pending):
            for _ in range(4):
                goes_left = both[offset + column[nodes]] <= self.threshold[nodes]
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
    memory, on the threads row_blocks allows); the (tree, row) pairs that restart for any
    candidate are found in one pass, from a bit per candidate on each leaf."""
    names = list(overrides)
    out = np.zeros((len(names), walked.leaves.shape[1]))
    groups = []
    for first in range(0, len(names), 64):
        bits = np.zeros(len(scorer.value), dtype=np.uint64)
        for i in range(first, min(first + 64, len(names))):
            restart = overrides[names[i]][1].restart
            bits |= (restart >= 0).astype(np.uint64) << np.uint64(i - first)
        groups.append((first, bits))

    def block(start: int, stop: int) -> None:
        leaves = walked.leaves[:, start:stop]
        values = scorer.value[leaves]
        compared = scorer.comparable(walked.bins[start:stop])
        for first, bits in groups:
            restarting = bits[leaves]
            pair_trees, pair_rows = np.nonzero(restarting)
            pair_bits = restarting[pair_trees, pair_rows]
            for i in range(first, min(first + 64, len(names))):
                mask, override = overrides[names[i]]
                hit = ((pair_bits >> np.uint64(i - first)) & np.uint64(1)).astype(bool)
                take = np.flatnonzero(hit & mask[start:stop][pair_rows])
                if len(take):
                    rows, predicted = _changed_rows(
                        scorer, compared, leaves, values, override,
                        pair_rows[take], pair_trees[take],
                    )  # fmt: skip
                    out[i, rows + start] = base[rows + start] - predicted

    row_blocks.each_block(walked.leaves.shape[1], BLOCK_ROWS, block)
    return {name: out[i] for i, name in enumerate(names)}


def _changed_rows(scorer, compared, leaves, values, override, rows, trees):
    """The rows of these restarting (tree, row) pairs and their predictions with the
    override: each pair walked again from its restart node, with the override's bins."""
    starts = override.restart[leaves[trees, rows]]
    new_leaves = scorer.walk(scorer.overridden(compared, override), rows, starts)
    changed = np.zeros(leaves.shape[1], dtype=bool)
    changed[rows] = True
    kept = np.flatnonzero(changed)
    if 2 * len(kept) > len(changed):  # most rows: a plain copy beats gathering columns
        changed_values = values.copy()
        changed_values[trees, rows] = scorer.value[new_leaves]
        return kept, scorer.finish(changed_values)[kept]
    column = np.cumsum(changed) - 1  # a block row's column among the changed rows
    changed_values = values[:, kept]
    changed_values[trees, column[rows]] = scorer.value[new_leaves]
    return kept, scorer.finish(changed_values)
