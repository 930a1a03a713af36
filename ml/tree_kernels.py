"""Compiled tree walks for ml.tree_reasons (numba, `nogil`: row blocks on several threads).

Both kernels walk scikit-learn's binned trees exactly as its predictor does (a missing bin
goes where the node sends missing values, any other bin left when <= the node's bin
threshold) and add leaf values to each row's raw score in the estimator's order: baseline +
tree 1 + tree 2 ..., one float addition after another (numba keeps IEEE order unless told
`fastmath`, which these kernels are not), so a row's sum is the float scikit-learn's own sum
gives it. Rows are independent: a block of rows gives the same numbers on any thread.

Scores come from `quick_raw_scores` (QuickScorer: branch-free masks over blocks of rows,
3.4x fewer CPU s than the walk on the 100k champions); the walk (`raw_scores`) remains for
trees over 64 leaves and restarts the reason codes' changed rows (`changed_raw_scores`).
Nodes are packed one row of int32 each (see `pack`), so a step reads one cache line; trees
are walked one at a time over a block of rows, so a tree's nodes stay in the L1 cache.
Compiled once per machine and cached beside this file (`cache=True`; numba falls back to its
user cache directory, or NUMBA_CACHE_DIR, when the source tree is read only).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Columns of a packed node: its feature, bin threshold, the bin a missing value compares as
# (-1: goes left, 256: goes right), left child, right child (= left + 1 column: a step is
# one index, no branch). A leaf is its own two children (feature 0, read and ignored), so a
# walk ends when a step stays put, and several rows walk in lockstep.
FEATURE, THRESHOLD, MISSING_AS, LEFT, RIGHT = range(5)


def pack(feature, threshold, missing_left, is_leaf, left, right) -> np.ndarray:
    """(nodes, 5) int32 node table of the kernels (columns above), from flat node arrays."""
    own = np.arange(len(feature))
    packed = np.empty((len(feature), 5), dtype=np.int32)
    packed[:, FEATURE] = np.where(is_leaf, 0, feature)
    packed[:, THRESHOLD] = threshold
    packed[:, MISSING_AS] = np.where(missing_left, -1, 256)
    packed[:, LEFT] = np.where(is_leaf, own, left)
    packed[:, RIGHT] = np.where(is_leaf, own, right)
    return packed


@njit(nogil=True, cache=True, inline="always")
def _step(bins, row, node, packed, missing):
    """The child a row goes to from `node` (the node itself at a leaf)."""
    value = np.int32(bins[row, packed[node, FEATURE]])
    value = packed[node, MISSING_AS] if value == missing else value
    return packed[node, LEFT + np.int32(value > packed[node, THRESHOLD])]


@njit(nogil=True, cache=True)
def _leaf(bins, row, node, over, packed, missing):
    """The leaf a row reaches from `node`; `over[column] >= 0` replaces the row's bin."""
    while True:
        value = np.int32(over[packed[node, FEATURE]])
        if value < 0:
            value = np.int32(bins[row, packed[node, FEATURE]])
        value = packed[node, MISSING_AS] if value == missing else value
        child = packed[node, LEFT + np.int32(value > packed[node, THRESHOLD])]
        if child == node:
            return node
        node = child


@njit(nogil=True, cache=True)
def _tree_leaves(bins, start, stop, root, packed, missing, out):
    """out[row - start] = the leaf of each row in [start, stop) in the tree at `root`; four
    rows walk in lockstep (independent loads overlap), the rest one by one."""
    row = start
    while row + 8 <= stop:
        a = b = c = d = e = f = g = h = root
        while True:
            a2 = _step(bins, row, a, packed, missing)
            b2 = _step(bins, row + 1, b, packed, missing)
            c2 = _step(bins, row + 2, c, packed, missing)
            d2 = _step(bins, row + 3, d, packed, missing)
            e2 = _step(bins, row + 4, e, packed, missing)
            f2 = _step(bins, row + 5, f, packed, missing)
            g2 = _step(bins, row + 6, g, packed, missing)
            h2 = _step(bins, row + 7, h, packed, missing)
            moved = (a2 != a) | (b2 != b) | (c2 != c) | (d2 != d)
            if not (moved | (e2 != e) | (f2 != f) | (g2 != g) | (h2 != h)):
                break
            a, b, c, d, e, f, g, h = a2, b2, c2, d2, e2, f2, g2, h2
        out[row - start : row - start + 8] = (a, b, c, d, e, f, g, h)
        row += 8
    while row < stop:
        node = root
        while True:
            child = _step(bins, row, node, packed, missing)
            if child == node:
                break
            node = child
        out[row - start] = node
        row += 1


@njit(nogil=True, cache=True)
def raw_scores(bins, roots, packed, value, baseline, missing, out, leaves):
    """out[row] = baseline + each tree's leaf value, in tree order (bins: rows x columns);
    each row's leaf in tree t kept in leaves[t, row] when `leaves` has rows (else none)."""
    rows = bins.shape[0]
    keep = leaves.shape[1] > 0
    found = np.empty(rows, dtype=np.int32)
    for row in range(rows):
        out[row] = baseline
    for t in range(len(roots)):
        _tree_leaves(bins, 0, rows, roots[t], packed, missing, found)
        for row in range(rows):
            out[row] += value[found[row]]
        if keep:
            leaves[t, :rows] = found


@njit(nogil=True, cache=True)
def changed_raw_scores(
    bins, leaves, packed, value, baseline, missing, restart, bits, over, mask, out, changed
):
    """Per row and candidate (mask[row, c]) whose leaf restarts in some tree
    (restart[c, leaf] >= 0: the node where its path turns; bits[c // 64, leaf] has bit
    c % 64 set there): the raw score with the candidate's columns set to `over[c]` (bins;
    -1 elsewhere) in out[row, c], and changed[row, c] = True. leaves[t, row]: the row's own
    leaf in tree t (raw_scores). Each candidate's sum is baseline + tree 1 + ..., the row's
    own leaf value where its leaf does not restart, the leaf walked again from the restart
    node where it does; a row's candidates are summed side by side, tree by tree."""
    rows, trees, candidates = bins.shape[0], leaves.shape[0], restart.shape[0]
    raw = np.empty(64)
    add = np.empty(64)
    one, none = np.uint64(1), np.uint64(0)
    for row in range(rows):
        for group in range(bits.shape[0]):
            base_c = group * 64
            width = min(64, candidates - base_c)
            wanted = none
            for j in range(width):
                if mask[row, base_c + j]:
                    wanted |= one << np.uint64(j)
            if wanted == none:
                continue
            restarted = none
            for j in range(width):
                raw[j] = baseline
            for t in range(trees):
                leaf = leaves[t, row]
                v = value[leaf]
                hit = bits[group, leaf] & wanted
                if hit == none:
                    for j in range(width):
                        raw[j] += v
                    continue
                restarted |= hit
                for j in range(width):
                    add[j] = v
                while hit != none:  # the restarting candidates' own leaves, lowest bit first
                    low = hit & (~hit + one)
                    j = math.frexp(np.float64(low))[1] - 1
                    c = base_c + j
                    add[j] = value[_leaf(bins, row, restart[c, leaf], over[c], packed, missing)]
                    hit ^= low
                for j in range(width):
                    raw[j] += add[j]
            for j in range(width):
                if (restarted >> np.uint64(j)) & one:
                    out[row, base_c + j] = raw[j]
                    changed[row, base_c + j] = True


def quick_tables(feature, threshold, missing_left, is_leaf, left, right, offsets, missing):
    """The tables of `quick_raw_scores` (QuickScorer: Lucchese et al., SIGIR 2015), or None
    when a tree has more than 64 leaves. Per tree t, its split nodes i < count[t]: the
    feature, the bins that go right (low < bin <= high: a missing bin goes the way the node
    sends missing values) and mask[t, i], the tree's leaves (bit k: its k-th leaf from the
    left) minus those of the node's left subtree; leaf[t, k] is the k-th leaf's node."""
    trees = len(offsets)
    stops = np.append(offsets[1:], len(feature))
    leaf_counts = [int(is_leaf[a:b].sum()) for a, b in zip(offsets, stops, strict=True)]
    if max(leaf_counts) > 64:
        return None
    width = 32 if max(leaf_counts) <= 32 else 64
    dtype = np.uint32 if width == 32 else np.uint64
    splits = max(1, max(leaf_counts) - 1)
    feat = np.zeros((trees, splits), dtype=np.int32)
    low = np.zeros((trees, splits), dtype=np.uint8)
    high = np.zeros((trees, splits), dtype=np.uint8)
    mask = np.zeros((trees, splits), dtype=dtype)
    count = np.zeros(trees, dtype=np.int32)
    leaf = np.zeros((trees, max(leaf_counts)), dtype=np.int32)
    full = (1 << width) - 1
    for t in range(trees):
        order: list[int] = []  # leaves left to right; each split's span of them
        spans: dict[int, tuple[int, int]] = {}
        stack = [(int(offsets[t]), False)]
        while stack:
            node, done = stack.pop()
            if is_leaf[node]:
                spans[node] = (len(order), len(order) + 1)
                order.append(node)
            elif done:
                spans[node] = (spans[left[node]][0], spans[right[node]][1])
            else:
                stack += [(node, True), (int(right[node]), False), (int(left[node]), False)]
        leaf[t, : len(order)] = order
        for i, node in enumerate(n for n in spans if not is_leaf[n]):
            first, stop = spans[int(left[node])]
            feat[t, i] = feature[node]
            low[t, i] = threshold[node]
            high[t, i] = missing - 1 if missing_left[node] else missing
            mask[t, i] = full & ~(((1 << (stop - first)) - 1) << first)
            count[t] = i + 1
    return feat, low, high, mask, count, leaf


@njit(nogil=True, cache=True)
def quick_raw_scores(bins, feat, low, high, mask, count, leaf, value, baseline, out, leaves):
    """`raw_scores` by QuickScorer: per tree, every split ANDs its mask into the rows that
    go right there, and a row's leaf is the leftmost one left (the exit leaf: a leaf left
    of it lies in the left subtree of a split on its path that the row passed on the right).
    No branches on the data: each split runs over a block of rows as vector instructions.
    Sums as raw_scores: baseline + tree 1 + tree 2 ..., so the same floats."""
    rows, columns = bins.shape
    keep = leaves.shape[1] > 0
    width = 256
    block = np.empty((columns, width), dtype=np.uint8)  # the rows' bins, column by column
    left = np.empty(width, dtype=mask.dtype)
    full = mask[0, 0] | ~mask[0, 0]
    for start in range(0, rows, width):
        n = min(width, rows - start)
        for c in range(columns):  # column-major bins are read in order
            for r in range(n):
                block[c, r] = bins[start + r, c]
        for r in range(n):
            out[start + r] = baseline
        for t in range(feat.shape[0]):
            left[:n] = full
            for i in range(count[t]):
                column = block[feat[t, i]]
                lo, hi, drop = low[t, i], high[t, i], mask[t, i]
                for r in range(n):
                    b = column[r]
                    left[r] &= drop if (b > lo) & (b <= hi) else full
            for r in range(n):
                lowest = left[r] & (~left[r] + np.uint64(1))
                node = leaf[t, math.frexp(np.float64(lowest))[1] - 1]
                out[start + r] += value[node]
                if keep:
                    leaves[t, start + r] = node
