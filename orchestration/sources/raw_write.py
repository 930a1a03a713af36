"""The raw schema and the writes every load shares: `raw.<table>` with its lineage columns,
`raw.quarantine`, good and bad rows inserted from one typed batch, per-day counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb

from contracts.raw import RAW_TABLES
from orchestration.sources.load_report import PartitionCounts
from orchestration.sources.tables import TableSpec, table_spec

_SQL_TYPES = {"str": "VARCHAR", "ts": "TIMESTAMP", "num": "DOUBLE", "json": "JSON"}

_META = (
    "_partition_date DATE, _loaded_at TIMESTAMP, _source VARCHAR, _source_file VARCHAR, "
    "_source_line BIGINT"
)


def ensure_raw_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create schema `raw`, the raw tables and `raw.quarantine` when absent, and add the
    columns a contract gained since a table was created (one catalog query, DDL only when
    something is missing)."""
    existing: dict[str, set[str]] = {}
    for table, column in conn.execute(  # duckdb_columns(): a third of information_schema's cost
        "select table_name, column_name from duckdb_columns() "
        "where schema_name = 'raw' and database_name = current_database()"
    ).fetchall():
        existing.setdefault(table, set()).add(column)
    if not existing:
        conn.execute("create schema if not exists raw")
    for name in RAW_TABLES:
        spec = table_spec(name)
        kinds = {c: _SQL_TYPES[k] if k != "json" else "VARCHAR" for c, k in spec.columns}
        if name not in existing:
            cols = ", ".join(f'"{c}" {kind}' for c, kind in kinds.items())
            conn.execute(f"create table if not exists raw.{name} ({cols}, {_META})")
            continue
        for c, kind in kinds.items():  # a column the contract gained since the table was created
            if c not in existing[name]:
                conn.execute(f'alter table raw.{name} add column if not exists "{c}" {kind}')
    if "quarantine" not in existing:
        conn.execute("""create table if not exists raw.quarantine (table_name VARCHAR,
            partition_date DATE, source_file VARCHAR, source_line BIGINT, payload VARCHAR,
            reason_code VARCHAR, reason_detail VARCHAR, quarantined_at TIMESTAMP,
            replayed_at TIMESTAMP)""")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def insert_good_and_bad(
    conn,
    spec: TableSpec,
    typed: str,
    where: str,
    now: datetime,
    source_name: str,
    good: bool = True,
) -> None:
    """Good rows keep the typed table's order (files sorted, lines ascending): no sort.
    `good=False`: only the bad rows (the good ones were written raw-first)."""
    cols = ", ".join(f'"{c}"' for c in spec.column_names)
    if good:
        conn.execute(
            f"""insert into raw.{spec.name}
            select {cols}, partition_date, $now, $source, source_file, source_line
            from {typed} where reason_code is null and {where}""",
            {"now": now, "source": source_name},
        )
    conn.execute(
        f"""insert into raw.quarantine
        select '{spec.name}', partition_date, source_file, source_line,
               rtrim(payload, chr(10) || chr(13)), reason_code,
               reason_detail, $now, null
        from {typed} where reason_code is not null and {where}
        order by source_file, source_line""",
        {"now": now},
    )


def grouped_counts(conn, typed: str, where: str) -> list[tuple]:
    """One scan of the rows of `typed` matching `where`: (partition_date, source_file,
    reason_code, _identity, _fallback, _dst, rows) groups, for the per-day and per-file
    counts of the report (raw-first loads have them counted already: `RawFirst.grouped`)."""
    return conn.execute(
        "select partition_date, source_file, reason_code, _identity, _fallback, _dst, count(*) "
        f"from {typed} where {where} group by all"
    ).fetchall()


def partition_counts(
    conn,
    spec: TableSpec,
    typed: str,
    where: str,
    days: list[date | None],
    late_days: int,
    groups: list[tuple],
) -> list[PartitionCounts]:
    """Per-day counts of the rows of `typed` matching `where`, from their `grouped_counts`
    and the duplicate-key scans."""
    counts = {day: PartitionCounts(day) for day in days}
    files: dict = {}
    for day, file, code, *_, n in groups:
        part = counts[day]
        part.rows_read += n
        files.setdefault(day, set()).add(file)
        if code is None:
            part.rows_loaded += n
        else:
            part.rows_quarantined += n
            part.quarantined_by_reason[code] = part.quarantined_by_reason.get(code, 0) + n
    for day, names in files.items():
        counts[day].files = sorted(names)
    key = spec.unique_key
    dated = [d for d in days if d is not None]
    if key and dated:
        _duplicate_counts(conn, spec, typed, where, dated, late_days, counts)
    return list(counts.values())


def _duplicate_counts(conn, spec: TableSpec, typed: str, where: str, dated, late_days, counts):
    """Per day: keys repeated within the day, and keys also stored in another partition within
    the late-arrival window (+2 days). The batch's keys are counted into a small temp table
    first, each (day, key) once with its rows: the repeats are then a sum, not a distinct count,
    and DuckDB knows the table's size and hashes it (106k) instead of the window's stored rows
    (1.4M on a 100k day), with a filter on the stored keys' scan."""
    key = spec.unique_key
    conn.execute(  # each (day, key) once, with its rows
        f"""create or replace temp table _segflow_keys as
        select partition_date, "{key}" as k, count(*) as n from {typed}
        where reason_code is null and partition_date is not null and "{key}" is not null
          and {where} group by all"""
    )
    for day, n in conn.execute(
        "select partition_date, sum(n) - count(*) from _segflow_keys group by all"
    ).fetchall():
        counts[day].duplicate_keys = n
    window = late_days + 2
    for day, n in conn.execute(
        f"""select t.partition_date, count(distinct t.k)
            from _segflow_keys t join (select "{key}", _partition_date from raw.{spec.name}
                                       where _partition_date between $lo and $hi) r
              on r."{key}" = t.k and r._partition_date <> t.partition_date
             and r._partition_date between t.partition_date - $w::integer
                                       and t.partition_date + $w::integer
            group by all""",
        {
            "lo": min(dated) - timedelta(days=window),
            "hi": max(dated) + timedelta(days=window),
            "w": window,
        },
    ).fetchall():
        counts[day].duplicate_keys_other_partitions = n
    conn.execute("drop table _segflow_keys")
