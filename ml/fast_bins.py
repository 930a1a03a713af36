"""A boosted pipeline's bins straight from the feature rows (scores, and the reason codes' walk).

The stock pipeline (ColumnTransformer: numbers and booleans passed through, categories
one-hot encoded; then a HistGradientBoosting model) scores through three copies of the day:
the prepared frame, the transformed float matrix and the booster's bins. Here each bin is
computed from the prepared column itself: a passed-through number is binned by the
booster's own thresholds (bin = how many thresholds lie below the value, NaN = the missing
bin: scikit-learn's `_map_to_bins`, a binary search), and a categorical part's output bins
are worked out once per distinct combination of its columns by the fitted transformer and
spread back by row. Columns are prepared once per batch for every champion
(`FeatureColumns`: the champions read the same columns). Any other layout gets no plan
(`BinPlan.build` returns None) and the caller runs scikit-learn's transform; a plan is
checked once against it (ml.pipeline_predict).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from ml import row_blocks
from ml.features import category_values, number_values, prepare_features

# Thresholds padded with +inf to this length: a branch-free binary search of 8 steps.
_PADDED = 255


class FeatureColumns:
    """The rows' feature columns as a model sees them (ml.features.prepare_features), each
    prepared once however many champions read it."""

    def __init__(self, rows: pd.DataFrame):
        self.rows = rows
        self._numbers: dict[tuple[str, bool], np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def numbers(self, name: str, boolean: bool) -> np.ndarray:
        key = (name, boolean)
        if key not in self._numbers:
            self._numbers[key] = number_values(self.rows[name], boolean)
        return self._numbers[key]

    def frame(self, spec) -> pd.DataFrame:
        """prepare_features(rows, spec) from the prepared columns (new arrays, the same
        values); prepare_features itself names any missing column."""
        if any(name not in self.rows.columns for name in spec.columns):
            return prepare_features(self.rows, spec)
        columns = {name: self.numbers(name, False) for name in spec.numeric}
        columns.update({name: self.numbers(name, True) for name in spec.boolean})
        for name in spec.categorical:
            codes, uniques = self.codes(name)
            columns[name] = uniques[codes]
        # a frame from a dict copies its arrays: the cached columns stay untouched
        return pd.DataFrame({name: columns[name] for name in spec.columns}, index=self.rows.index)

    def codes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(code of each row, the distinct prepared strings) of categorical column `name`."""
        if name not in self._codes:
            self._codes[name] = _category_codes(self.rows[name])
        return self._codes[name]


def _category_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, distinct prepared values) of a categorical column. Strings and nulls
    (what the warehouse returns) are grouped first and only the distinct ones prepared;
    other values are prepared row by row (1 and 1.0 group together but print apart)."""
    raw_codes, raw = pd.factorize(column.to_numpy(dtype=object), use_na_sentinel=True)
    if all(isinstance(value, str) for value in raw):
        prepared = category_values(pd.Series([*raw, None], dtype=object))
        merged, uniques = pd.factorize(prepared)
        return merged[raw_codes].astype(np.int64), np.asarray(uniques, dtype=object)
    codes, uniques = pd.factorize(category_values(column))
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


class BinPlan:
    """How one fitted pipeline's booster bins come from FeatureColumns (see module doc)."""

    def __init__(self, numbers, categories, thresholds, missing: int, width: int):
        self._numbers = numbers  # (output column, feature name, is boolean)
        self._categories = categories  # (transformer, column names, output slice)
        self._thresholds = thresholds  # (width, _PADDED) float64, +inf padded
        self._missing = missing
        self.width = width

    @classmethod
    def build(cls, prep, binner, spec) -> BinPlan | None:
        """The plan of `prep` (a fitted ColumnTransformer) and `binner` (the booster's
        _BinMapper), or None when a part is not one this module reproduces."""
        if getattr(prep, "sparse_output_", False) or np.any(binner.is_categorical_):
            return None
        width = len(binner.bin_thresholds_)
        if any(len(t) > _PADDED for t in binner.bin_thresholds_):
            return None
        thresholds = np.full((width, _PADDED), np.inf)
        for j, values in enumerate(binner.bin_thresholds_):
            thresholds[j, : len(values)] = values
        numbers, categories, covered = [], [], np.zeros(width, dtype=bool)
        for name, transformer, columns in prep.transformers_:
            out = prep.output_indices_.get(name)
            if transformer == "drop" or out is None or out.stop == out.start:
                continue
            if isinstance(columns, slice) or not all(isinstance(c, str) for c in columns):
                return None
            if _passes_through(transformer) and all(
                c in spec.numeric or c in spec.boolean for c in columns
            ):
                if out.stop - out.start != len(columns):
                    return None
                numbers += [(out.start + j, c, c in spec.boolean) for j, c in enumerate(columns)]
            elif all(c in spec.categorical for c in columns):
                categories.append((transformer, list(columns), out))
            else:
                return None
            covered[out] = True
        if not covered.all():
            return None
        return cls(numbers, categories, thresholds, int(binner.missing_values_bin_idx_), width)

    def bins(self, columns: FeatureColumns, take: np.ndarray | None = None) -> np.ndarray:
        """The booster's bins of the rows (all, or those at `take`), column by column:
        (width, rows) uint8, C order (its transpose is the rows x features bin matrix)."""
        rows = len(columns.rows) if take is None else len(take)
        out = np.empty((self.width, rows), dtype=np.uint8)
        every = take is None
        take = np.empty(0, dtype=np.intp) if take is None else np.asarray(take, dtype=np.intp)
        prepared = [columns.numbers(name, boolean) for _, name, boolean in self._numbers]

        def some(first: int, stop: int) -> None:
            for (j, _, _), values in zip(
                self._numbers[first:stop], prepared[first:stop], strict=True
            ):
                bin_column(values, take, every, self._thresholds[j], self._missing, out[j])

        row_blocks.each_block(len(self._numbers), -(-len(self._numbers) // 2) or 1, some)
        for transformer, names, part in self._categories:
            out[part] = self._category_bins(transformer, names, part, columns, take, every)
        return out

    def _category_bins(self, transformer, names, part, columns, take, every) -> np.ndarray:
        """A categorical part's bins: its transformer and the booster's thresholds applied
        once per distinct combination of its columns, gathered by row (a one-hot encoder:
        once per distinct value of each column, its output block being that column's own)."""
        codes = [columns.codes(name) for name in names]
        widths = one_hot_widths(transformer, len(names), part.stop - part.start)
        if widths is not None:
            return self._one_hot_bins(transformer, names, part, codes, widths, take, every)
        key = np.zeros(len(columns.rows), dtype=np.int64)
        span = 1
        for row_codes, uniques in codes:
            if span * (len(uniques) + 1) >= 2**62:  # renumber the combinations seen so far
                key, span = np.unique(key, return_inverse=True)[1].ravel(), len(columns.rows)
            key = key * (len(uniques) + 1) + row_codes
            span *= len(uniques) + 1
        if not every:
            key = key[take]
        distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        picked = {
            name: (uniques[row_codes if every else row_codes[take]])[first]
            for name, (row_codes, uniques) in zip(names, codes, strict=True)
        }
        encoded = _dense(transformer, pd.DataFrame(picked, columns=names))
        table = np.empty((part.stop - part.start, len(distinct)), dtype=np.uint8)
        none = np.empty(0, dtype=np.intp)
        for j in range(part.stop - part.start):
            values = np.ascontiguousarray(encoded[:, j])
            thresholds = self._thresholds[part.start + j]
            bin_column(values, none, True, thresholds, self._missing, table[j])
        return table[:, inverse.ravel()]

    def _one_hot_bins(self, encoder, names, part, codes, widths, take, every) -> np.ndarray:
        """One-hot bins column by column: each input's distinct values encoded once (rows of
        one frame; an input's output block depends on that input alone)."""
        out = np.empty((part.stop - part.start, len(codes[0][0]) if every else len(take)), "u1")
        # One frame: row k holds each input's k-th distinct value (its first past its end).
        depth = max(len(uniques) for _, uniques in codes)
        frame = {
            name: np.concatenate([uniques, np.repeat(uniques[:1], depth - len(uniques))])
            for name, (_, uniques) in zip(names, codes, strict=True)
        }
        encoded = _dense(encoder, pd.DataFrame(frame, columns=names))
        start = 0
        none = np.empty(0, dtype=np.intp)
        for (row_codes, uniques), width in zip(codes, widths, strict=True):
            table = np.empty((width, len(uniques)), dtype=np.uint8)
            for j in range(width):
                values = np.ascontiguousarray(encoded[: len(uniques), start + j])
                thresholds = self._thresholds[part.start + start + j]
                bin_column(values, none, True, thresholds, self._missing, table[j])
            out[start : start + width] = table[:, row_codes if every else row_codes[take]]
            start += width
        return out


def one_hot_widths(transformer, inputs: int, width: int | None) -> list[int] | None:
    """Output columns per input of a fitted OneHotEncoder (each input owns its own block),
    None for any other transformer or when the widths do not add up (to `width`, if given)."""
    from sklearn.preprocessing import OneHotEncoder

    widths = getattr(transformer, "_n_features_outs", None)
    if type(transformer) is not OneHotEncoder or widths is None or len(widths) != inputs:
        return None
    return [int(w) for w in widths] if width in (None, sum(widths)) else None


def _dense(transformer, frame: pd.DataFrame) -> np.ndarray:
    """The transformer's output on `frame` as floats (as ColumnTransformer stacks it)."""
    if transformer == "passthrough":
        return frame.to_numpy(dtype=float)
    return np.asarray(transformer.transform(frame), dtype=float)


def _passes_through(transformer: Any) -> bool:
    """Whether the transformer outputs its input unchanged (passthrough, identity function)."""
    from sklearn.preprocessing import FunctionTransformer

    if transformer == "passthrough":
        return True
    return isinstance(transformer, FunctionTransformer) and transformer.func is None


@njit(nogil=True, cache=True)
def bin_column(values, take, every, thresholds, missing, out):
    """out[r] = the bin of values[r] (every) or values[take[r]]: NaN to `missing`, else how
    many of the sorted `thresholds` (+inf padded to 255) are below the value: the bin
    scikit-learn's binary search finds (the first threshold >= the value)."""
    rows = len(values) if every else len(take)
    for r in range(rows):
        x = values[r] if every else values[take[r]]
        if x != x:
            out[r] = missing
            continue
        position = 0
        step = 128
        while step > 0:  # no branch on the data: the comparisons of many rows overlap
            position += step * (thresholds[position + step - 1] < x)
            step >>= 1
        out[r] = position
