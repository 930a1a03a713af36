"""Compiled tree walks for ml.tree_reasons (numba, `nogil`: row blocks on several threads).

Both kernels walk scikit-learn's binned trees exactly as its predictor does (a missing bin
goes where the node sends missing values, any other bin left when <= the node's bin
threshold) and add leaf values to each row's raw score in the estimator's order: baseline +
tree 1 + tree 2 ..., one float addition after another (numba keeps IEEE order unless told
`fastmath`, which these kernels are not), so a row's sum is the float scikit-learn's own sum
gives it. Rows are independent: a block of rows gives the same numbers on any thread.

Compiled once per machine and cached beside this file (`cache=True`; numba falls back to its
user cache directory, or NUMBA_CACHE_DIR, when the source tree is read only).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _leaf(bins, row, node, over, feature, threshold, missing_left, left, right, is_leaf, missing):
    """The leaf a row reaches from `node`; `over[column] >= 0` replaces the row's bin."""
    while not is_leaf[node]:
        column = feature[node]
        value = over[column]
        if value < 0:
            value = bins[row, column]
        if value == missing:
            node = left[node] if missing_left[node] else right[node]
        elif value <= threshold[node]:
            node = left[node]
        else:
            node = right[node]
    return node


@njit(nogil=True, cache=True)
def raw_scores(bins, roots, nodes, baseline, missing, out):
    """out[row] = baseline + each tree's leaf value, in tree order (bins: rows x columns)."""
    feature, threshold, missing_left, left, right, is_leaf, value = nodes
    unchanged = np.full(bins.shape[1], -1, dtype=np.int16)
    for row in range(bins.shape[0]):
        raw = baseline
        for root in roots:
            leaf = _leaf(
                bins, row, root, unchanged, feature, threshold, missing_left, left, right,
                is_leaf, missing,
            )  # fmt: skip
            raw += value[leaf]
        out[row] = raw


@njit(nogil=True, cache=True)
def changed_raw_scores(bins, roots, nodes, baseline, missing, restart, over, mask, out, changed):
    """Per row and candidate (mask[row, c]): the raw score with the candidate's columns set
    to `over[c]` (bins; -1 elsewhere), in out[row, c], and changed[row, c] = True, for the
    rows whose leaf restarts (restart[c, leaf] >= 0: the node where the path turns) in some
    tree. The sum restarts from the row's own sum before that first tree (the same floats
    as summing from the baseline) and walks again only the trees whose leaf restarts."""
    feature, threshold, missing_left, left, right, is_leaf, value = nodes
    trees = len(roots)
    unchanged = np.full(bins.shape[1], -1, dtype=np.int16)
    leaves = np.empty(trees, dtype=np.intp)
    prefix = np.empty(trees + 1)
    for row in range(bins.shape[0]):
        prefix[0] = baseline
        for t in range(trees):
            leaves[t] = _leaf(
                bins, row, roots[t], unchanged, feature, threshold, missing_left, left,
                right, is_leaf, missing,
            )  # fmt: skip
            prefix[t + 1] = prefix[t] + value[leaves[t]]
        for c in range(restart.shape[0]):
            if not mask[row, c]:
                continue
            first = 0
            while first < trees and restart[c, leaves[first]] < 0:
                first += 1
            if first == trees:
                continue
            raw = prefix[first]
            for t in range(first, trees):
                leaf = leaves[t]
                start = restart[c, leaf]
                if start >= 0:
                    leaf = _leaf(
                        bins, row, start, over[c], feature, threshold, missing_left, left,
                        right, is_leaf, missing,
                    )  # fmt: skip
                raw += value[leaf]
            out[row, c] = raw
            changed[row, c] = True
