"""Raw tables as Parquet for the Spark engine: one folder per raw table, one file per partition.

dbt on Spark reads raw.* from <sources_dir>/raw/<table>/ (macro register_source_tables), so
the Spark path needs no DuckDB file downstream of the ingest. A partition's file is replaced as
a whole, like the ingest replaces a partition: re-exporting a day never duplicates it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import duckdb

from contracts.raw import RAW_TABLES
from orchestration.settings import Settings


def partition_file(raw_dir: Path, table: str, day: date) -> Path:
    return raw_dir / table / f"part-{day.isoformat()}.parquet"


def export_raw(
    conn: duckdb.DuckDBPyConnection,
    sources_dir: Path,
    partitions: Iterable[date] | None = None,
    tables: Iterable[str] = RAW_TABLES,
) -> dict[str, int]:
    """Write raw.<table> partitions (all when None) as Parquet; returns rows written per table."""
    raw_dir = sources_dir / "raw"
    written: dict[str, int] = {}
    for table in tables:
        (raw_dir / table).mkdir(parents=True, exist_ok=True)
        days = (
            sorted(set(partitions))
            if partitions is not None
            else [
                r[0]
                for r in conn.execute(
                    f"select distinct _partition_date from raw.{table} order by 1"
                ).fetchall()
            ]
        )
        # A row-less file carries the schema, so Spark can register a table with no rows yet.
        conn.execute(
            f"copy (select * from raw.{table} limit 0) to '{raw_dir / table / 'part-empty.parquet'}' "
            "(format parquet)"
        )
        written[table] = 0
        for day in days:
            target = partition_file(raw_dir, table, day)
            rows = conn.execute(
                f"select count(*) from raw.{table} where _partition_date = ?", [day]
            ).fetchone()[0]
            if rows == 0:
                target.unlink(missing_ok=True)
                continue
            tmp = target.with_suffix(".tmp")
            conn.execute(
                f"copy (select * from raw.{table} where _partition_date = ? "
                f"order by _source_file, _source_line) to '{tmp}' (format parquet)",
                [day],
            )
            tmp.replace(target)
            written[table] += rows
    return written


def publish_raw(
    settings: Settings, conn: duckdb.DuckDBPyConnection, table: str, partitions: Iterable[date]
) -> int:
    """After the ingest loaded `partitions` of raw.<table>: on the Spark engine, export them to
    the Parquet sources dbt on Spark reads; nothing to do on DuckDB. Returns rows exported."""
    if settings.engine != "spark":
        return 0
    return export_raw(conn, settings.spark_sources_dir, list(partitions), [table])[table]
