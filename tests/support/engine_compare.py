"""Compare the tables two engines built: same columns, same rows; floats within 1e-9 relative.

The Spark side is read straight from its Parquet table folders (spark.sql.warehouse.dir), so
no second Spark process is needed to check a Spark build.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

REL_TOL = 1e-9


def duckdb_tables(db: Path, schema: str = "main") -> dict[str, pd.DataFrame]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = ? "
                "and table_type = 'BASE TABLE' order by 1",
                [schema],
            ).fetchall()
        ]
        return {n: conn.execute(f'select * from {schema}."{n}"').df() for n in names}
    finally:
        conn.close()


def spark_tables(warehouse: Path, schema: str = "main") -> dict[str, pd.DataFrame]:
    """Every managed Parquet table of `schema` under the Spark warehouse folder."""
    conn = duckdb.connect()
    try:
        out = {}
        for folder in sorted((warehouse / f"{schema}.db").iterdir()):
            files = [p for p in folder.rglob("*.parquet") if not p.name.startswith(("_", "."))]
            if folder.is_dir() and files:
                out[folder.name] = conn.execute(
                    "select * from read_parquet(?)", [[str(p) for p in files]]
                ).df()
        return out
    finally:
        conn.close()


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            if getattr(series.dt, "tz", None) is not None:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            out[col] = series.astype("datetime64[us]")
        elif series.dtype == object:
            sample = series.dropna()
            first = sample.iloc[0] if len(sample) else None
            if first is not None and type(first).__name__ == "Decimal":
                out[col] = series.astype(float)
            elif isinstance(first, list | np.ndarray):
                out[col] = series.map(lambda v: None if v is None else tuple(v))
            elif first is not None and type(first).__name__ == "date":
                out[col] = pd.to_datetime(series)
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
            out[col] = series.astype("Int64")
    return out


def table_differences(left: pd.DataFrame, right: pd.DataFrame, name: str) -> list[str]:
    """Human-readable differences (empty when the tables are equal)."""
    if list(left.columns) != list(right.columns):
        return [f"{name}: columns differ: {list(left.columns)} vs {list(right.columns)}"]
    if len(left) != len(right):
        return [f"{name}: {len(left)} rows vs {len(right)} rows"]
    left, right = _normalise(left), _normalise(right)
    floats = [c for c in left.columns if pd.api.types.is_float_dtype(left[c])]
    keys = [c for c in left.columns if c not in floats]
    if keys:
        left = left.sort_values(keys, na_position="first").reset_index(drop=True)
        right = right.sort_values(keys, na_position="first").reset_index(drop=True)
    problems = []
    for col in keys:
        a, b = left[col].astype(object), right[col].astype(object)
        same = (a == b) | (a.isna() & b.isna())
        if not bool(same.all()):
            i = int(np.flatnonzero(~same.to_numpy())[0])
            problems.append(f"{name}.{col}: row {i}: {a.iloc[i]!r} vs {b.iloc[i]!r}")
    for col in floats:
        a = left[col].to_numpy(dtype=float)
        b = pd.to_numeric(right[col]).to_numpy(dtype=float)
        both_nan = np.isnan(a) & np.isnan(b)
        close = np.isclose(a, b, rtol=REL_TOL, atol=1e-12) | both_nan
        if not close.all():
            i = int(np.flatnonzero(~close)[0])
            problems.append(f"{name}.{col}: row {i}: {a[i]!r} vs {b[i]!r}")
    return problems
