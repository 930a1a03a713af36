"""Compare the tables two engines built: same columns, same rows; floats within 1e-9 relative.

The Spark side is read straight from its Parquet table folders (spark.sql.warehouse.dir), so
no second Spark process is needed to check a Spark build.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from orchestration.spark.tables import table_files

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
    """Every managed Parquet table of `schema` under the Spark warehouse folder (partition
    columns from the folder names, listed last, as Spark lists them)."""
    conn = duckdb.connect()
    try:
        out = {}
        for folder in sorted((warehouse / f"{schema}.db").iterdir()):
            files = table_files(folder) if folder.is_dir() else []
            if files:
                parts = [p.split("=")[0] for p in Path(files[0]).relative_to(folder).parts[:-1]]
                frame = conn.execute(
                    f"select * from read_parquet(?, hive_partitioning = {str(bool(parts)).lower()})",
                    [files],
                ).df()
                frame.attrs["partition_columns"] = tuple(parts)
                out[folder.name] = frame
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


def table_differences(
    left: pd.DataFrame, right: pd.DataFrame, name: str, last: tuple[str, ...] = ()
) -> list[str]:
    """Human-readable differences (empty when the tables are equal). Columns in `last` (a
    Spark table's partition columns; by default those spark_tables found) are expected at
    the end of `right`."""
    last = last or tuple(right.attrs.get("partition_columns", ()))
    order = [c for c in left.columns if c not in last] + [c for c in last if c in left.columns]
    if order != list(right.columns):
        return [f"{name}: columns differ: {list(left.columns)} vs {list(right.columns)}"]
    if len(left) != len(right):
        return [f"{name}: {len(left)} rows vs {len(right)} rows"]
    right = right[list(left.columns)]
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
