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
code, so a changed row's prediction is the float scikit-learn would return for it. A changed
row's sum restarts from its own sum before the first tree whose leaf changes (the same
floats). The walks and sums are compiled, GIL-free kernels (ml.tree_kernels) over blocks of
rows, and read the booster's own bins (x <= a split's threshold exactly when bin(x) <= its
bin: the same leaves, from a matrix 8x smaller). Rows are independent (per-row sums,
elementwise links), so a user's codes do not depend on the batch. `TreeScorer.for_model`
verifies this on a sample and declines (the caller re-predicts) when the estimator is of
another shape or the sample differs in any bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml import row_blocks

# Rows per block: the unit of work of the threads (ml.row_blocks).
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
    """A matrix as the trees see it: its bins (rows, columns; C order: a block of rows is
    one contiguous slice for the kernels), each row's raw score, and (when kept) each row's
    leaf in each tree by block of `block_rows` rows: leaves[block, tree, row in block]."""

    bins: np.ndarray
    raw: np.ndarray
    leaves: np.ndarray
    block_rows: int


class TreeScorer:
    """One fitted HistGradientBoosting model (plain, or calibrated with ensemble=False) as
    flat node arrays walked by compiled kernels (ml.tree_kernels): predictions, and
    predictions of rows with a few columns set to reference values. Blocks of rows run on
    the threads `ml.row_blocks.limit` allows."""

    def __init__(self, booster, finish):
        self._finish = finish  # raw scores (n,) -> the model's prediction
        self._binner = booster._bin_mapper
        self._missing = int(self._binner.missing_values_bin_idx_)
        trees = [iteration[0] for iteration in booster._predictors]
        self._baseline = float(booster._baseline_prediction.ravel()[0])
        sizes = np.array([len(t.nodes) for t in trees])
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.concatenate([t.nodes for t in trees])
        owner = np.repeat(np.arange(len(trees)), sizes)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.bin_threshold = nodes["bin_threshold"].astype(np.int16)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.is_leaf = nodes["is_leaf"].astype(bool)
        self.left = nodes["left"].astype(np.intp) + self.offsets[owner]
        self.right = nodes["right"].astype(np.intp) + self.offsets[owner]
        self.value = nodes["value"].astype(float)
        self.depth = nodes["depth"].astype(np.intp)
        from ml.tree_kernels import pack, quick_tables

        # What the kernels walk (ml.tree_kernels): one packed row per node, and the
        # QuickScorer tables that score whole blocks (None for trees over 64 leaves).
        nodes = (self.feature, self.bin_threshold, self.missing_left, self.is_leaf, self.left)
        self.packed = pack(*nodes, self.right)
        self.quick = quick_tables(*nodes, self.right, self.offsets, self._missing)

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

    def walked(self, Z: np.ndarray | None, keep_leaves: bool = True, bins=None) -> Walked:
        """Z's bins (or the `bins` given: rows x features, any order), raw scores and (for
        reason codes) leaves, a block of rows at a time: baseline + tree 1 + tree 2 ...,
        summed in the estimator's order by the kernel."""
        from ml.tree_kernels import quick_raw_scores, raw_scores

        binned = bins is not None
        if not binned:
            Z = np.asarray(Z, dtype=float)
            bins = np.empty(Z.shape, dtype=np.uint8)
        rows, trees = len(bins), len(self.offsets)
        width = max(1, min(BLOCK_ROWS, rows))
        raw = np.empty(rows)
        blocks = -(-rows // width) if keep_leaves else 0
        leaves = np.empty((blocks, trees, width), dtype=np.int32)
        none = np.empty((trees, 0), dtype=np.int32)

        def block(start: int, stop: int) -> None:
            if not binned:
                bins[start:stop] = self._binner.transform(Z[start:stop])
            kept = leaves[start // width] if blocks else none
            if self.quick is not None:
                quick_raw_scores(
                    bins[start:stop], *self.quick, self.value, self._baseline, raw[start:stop],
                    kept,
                )  # fmt: skip
                return
            raw_scores(
                bins[start:stop], self.offsets, self.packed, self.value, self._baseline,
                self._missing, raw[start:stop], kept,
            )  # fmt: skip

        row_blocks.each_block(rows, width, block)
        return Walked(bins, raw, leaves, width)

    def predict_walked(self, walked: Walked) -> np.ndarray:
        """The predictions of the rows of `walked`: their raw scores through the link."""
        return self._finish(walked.raw)

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """The predictions of Z, keeping no leaves (scores alone)."""
        return self.predict_walked(self.walked(Z, keep_leaves=False))

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """The model's predictions of raw scores (its own link / calibration code)."""
        return self._finish(raw)

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
    """Per candidate name: base - prediction with its override, on the rows of its mask
    whose leaf restarts in some tree (0 elsewhere: their prediction is the base, as
    re-predicting the masked rows gives). One kernel pass per block of rows for all
    candidates (ml.tree_kernels.changed_raw_scores), then the model's link per candidate."""
    from ml.tree_kernels import changed_raw_scores

    names = list(overrides)
    rows = len(walked.bins)
    restart = np.stack([overrides[name][1].restart for name in names]).astype(np.int32)
    bits = np.zeros((-(-len(names) // 64), restart.shape[1]), dtype=np.uint64)
    for c in range(len(names)):
        bits[c // 64] |= (restart[c] >= 0).astype(np.uint64) << np.uint64(c % 64)
    over = np.full((len(names), walked.bins.shape[1]), -1, dtype=np.int16)
    for c, name in enumerate(names):
        override = overrides[name][1]
        over[c, override.columns] = override.bins
    mask = np.ascontiguousarray(np.stack([overrides[name][0] for name in names], axis=1))
    raw = np.zeros((rows, len(names)))
    changed = np.zeros((rows, len(names)), dtype=bool)

    def block(start: int, stop: int) -> None:
        changed_raw_scores(
            walked.bins[start:stop], walked.leaves[start // walked.block_rows],
            scorer.packed, scorer.value,
            scorer._baseline, scorer._missing, restart, bits, over, mask[start:stop],
            raw[start:stop], changed[start:stop],
        )  # fmt: skip

    row_blocks.each_block(rows, walked.block_rows, block)
    out = {}
    for c, name in enumerate(names):
        values = np.zeros(rows)
        hit = np.flatnonzero(changed[:, c])
        if len(hit):
            values[hit] = base[hit] - scorer.finish(raw[hit, c])
        out[name] = values
    return out
