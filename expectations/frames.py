"""Read the frames a suite validates from DuckDB (read-only SQL on the caller's connection)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import date

import duckdb
import pandas as pd

from expectations.config import QualityConfig
from expectations.tables import TableSpec


def declared_columns(conn: duckdb.DuckDBPyConnection, spec: TableSpec) -> dict[str, str] | None:
    """Column -> declared DuckDB type, or None when the table does not exist."""
    rows = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [spec.schema, spec.short_name],
    ).fetchall()
    if not rows:
        return None
    return {name: dtype.split("(")[0].strip().upper() for name, dtype in rows}


def schema_frame(declared: dict[str, str]) -> pd.DataFrame:
    """One row: each column's declared type as the value, so GX reports the found type."""
    return pd.DataFrame([declared], columns=list(declared))


# DuckDB integer types narrower than BIGINT (declared_columns' upper-case names)
_NARROW_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER")


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _day(day: date) -> str:
    """A date literal: DuckDB prunes row groups by a constant, not by `in (select unnest(?))`
    or a scalar subquery (those scanned all of raw.events' 24.5M rows on a 100k day)."""
    return f"date '{date.fromisoformat(str(day)[:10]).isoformat()}'"


def row_frame(
    conn: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    declared: dict[str, str],
    partition_dates: Sequence[date],
    config: QualityConfig,
) -> pd.DataFrame:
    """The partitions' rows; heavy JSON columns become byte lengths; `dq_*` helper columns."""
    present = set(declared)
    select = []
    for column in declared:
        if column in spec.heavy_columns:
            select.append(
                f"strlen(coalesce(cast({_quoted(column)} as varchar), '')) "
                f"as {_quoted(column + '_bytes')}"
            )
        elif declared[column] in _NARROW_INTEGERS:
            # as int64: GX's pandas range check is vectorised only when `column.dtype in
            # [int, float]`; an int32 column goes through a Python call per value
            select.append(f"cast({_quoted(column)} as BIGINT) as {_quoted(column)}")
        else:
            select.append(_quoted(column))
    part = _quoted(spec.partition_column)
    if spec.schema == "raw" and spec.partition_column in present:
        select.append(f"cast({part} as timestamp) + interval 1 day as dq_window_end")
        select.append(
            f"cast({part} as timestamp) - to_days({int(config.late_arrival_days)}) "
            "as dq_window_start"
        )
    ids = [c for c in ("user_id", "anonymous_id") if c in present]
    if spec.short_name == "events" and ids:
        select.append(
            "coalesce(" + ", ".join(f"nullif(trim({c}), '')" for c in ids) + ") as dq_identity"
        )
    if spec.short_name == "events" and {"type", "event"} <= present:
        select.append("case when type = 'track' then event end as dq_track_event")
    sql = (
        f"select {', '.join(select)} from {spec.schema}.{_quoted(spec.short_name)} "
        f"where {part} in (select unnest(?::date[]))"
    )
    return _ns_times(conn.execute(sql, [list(partition_dates)]).df())


def _ns_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamp columns as nanoseconds: DuckDB gives microseconds, and GX's pandas range check
    is vectorised only for `datetime64[ns]` (else one Python call per value: 0.5 CPU s for
    one 100k day of raw.events). A column outside the nanosecond range stays as it was."""
    for column in frame.columns:
        if pd.api.types.is_datetime64_dtype(frame[column].dtype) and not (
            pd.api.types.is_datetime64_ns_dtype(frame[column].dtype)
        ):
            with suppress(pd.errors.OutOfBoundsDatetime, OverflowError):
                frame[column] = frame[column].astype("datetime64[ns]")
    return frame


def partition_frame(
    conn: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    declared: dict[str, str],
    partition_dates: Sequence[date],
    config: QualityConfig,
) -> pd.DataFrame:
    """Per partition: row count, trailing median of earlier partitions with data of the same
    day type (weekdays are compared with weekdays, weekends with weekends, so a quiet Sunday is
    not a drop), their ratio, and (for raw tables with an id) rows whose id already appeared on
    an earlier day. No ratio below `row_count_min_baseline` rows: a quiet product's empty day
    is not a volume drop."""
    table = f"{spec.schema}.{_quoted(spec.short_name)}"
    part = _quoted(spec.partition_column)
    history = int(config.row_count_history_days)
    days = [_day(d) for d in sorted(set(partition_dates))] or ["null::date"]
    frame = conn.execute(
        f"""
        with targets as (select distinct unnest(?::date[]) as partition_date),
        counts as (
            select {part}::date as partition_date, count(*) as n from {table}
            where {part} >= {days[0]} - to_days({history}) and {part} <= {days[-1]}
            group by 1
        ),
        scored as (
            select t.partition_date, coalesce(c.n, 0) as row_count,
                (select count(*) from counts h where h.partition_date < t.partition_date
                   and h.partition_date >= t.partition_date - to_days({history})
                   and (isodow(h.partition_date) >= 6) = (isodow(t.partition_date) >= 6))
                   as history_partitions,
                (select median(h.n) from counts h where h.partition_date < t.partition_date
                   and h.partition_date >= t.partition_date - to_days({history})
                   and (isodow(h.partition_date) >= 6) = (isodow(t.partition_date) >= 6))
                   as trailing_median_row_count
            from targets t left join counts c using (partition_date)
        )
        select *, case when history_partitions >= ? and trailing_median_row_count >= ?
                        and trailing_median_row_count > 0
                       then row_count / trailing_median_row_count end as row_count_ratio
        from scored order by partition_date
        """,
        [
            list(partition_dates),
            int(config.row_count_min_history),
            float(config.row_count_min_baseline),
        ],
    ).df()
    key = spec.key_column
    if spec.schema == "raw" and key and key != "user_id" and key in declared:
        reused = conn.execute(
            f"""
            select e.{part}::date as partition_date, count(*) as rows_reusing_earlier_id
            from {table} e
            where e.{part} in ({", ".join(days)}) and e.{_quoted(key)} is not null
              and exists (select 1 from {table} o where o.{_quoted(key)} = e.{_quoted(key)}
                          and o.{part} < e.{part})
            group by 1
            """
        ).df()
        frame = frame.merge(reused, on="partition_date", how="left")
        frame["rows_reusing_earlier_id"] = frame["rows_reusing_earlier_id"].fillna(0).astype(int)
        frame["cross_partition_duplicate_share"] = frame["rows_reusing_earlier_id"] / frame[
            "row_count"
        ].where(frame["row_count"] > 0)
    return frame
