"""The snapshot's JSON columns, built column by column, are the text one json.dumps per row
of the plain values gives, for every kind of column DuckDB hands back."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd

from orchestration.realtime.snapshot import _json_objects, _plain


def _frame() -> pd.DataFrame:
    conn = duckdb.connect()
    return (
        conn.execute(
            """
        select * from (values
            (1, 2.5, true, 'a, "b"', [1, 2], date '2026-12-04', 7),
            (null, 'nan'::double, null, null, null, null, null),
            (3, 'inf'::double, false, 'plain', [], date '2026-12-05', 9),
            (4, -0.0, true, 'é', [3], null, 1)
        ) t(n, x, flag, label, items, day, maybe)
        """
        )
        .df()
        .assign(maybe_int=lambda f: f["maybe"].astype("Int32"), big=np.int64(2**40))
        .assign(**{"share_%s": 0.5, "100%": "x"})  # names are format text, not format
    )


def test_column_wise_json_equals_one_dumps_per_row():
    frame = _frame()
    columns = list(frame.columns)
    expected = [
        json.dumps({c: _plain(v) for c, v in zip(columns, row, strict=True)})
        for row in frame.itertuples(index=False)
    ]
    assert _json_objects(frame, columns) == expected
    assert '"x": null' in expected[1] and '"x": Infinity' in expected[2]
    assert '"label": "a, \\"b\\""' in expected[0]


def test_mixed_true_and_one_keep_their_own_text():
    frame = pd.DataFrame({"v": pd.Series([True, 1, "x", 1.0, None], dtype=object)})
    assert _json_objects(frame, ["v"]) == [
        '{"v": true}',
        '{"v": 1}',
        '{"v": "x"}',
        '{"v": 1.0}',
        '{"v": null}',
    ]
