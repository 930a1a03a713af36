"""DuckDB connections. One writer process per file: callers open, work, close; never hold a
connection across a dbt invocation (dbt opens the same file). Every connection gets the
memory_limit and threads of the settings (SEGFLOW_DUCKDB_MEMORY_LIMIT / SEGFLOW_DUCKDB_THREADS),
the same bounds dbt gets through profiles.yml."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from orchestration.settings import Settings


def duckdb_config(settings: Settings | None = None) -> dict[str, str]:
    """DuckDB connection config from the settings (memory_limit, threads)."""
    settings = settings or Settings.from_env()
    return {"memory_limit": settings.duckdb_memory_limit, "threads": str(settings.duckdb_threads)}


def dbt_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment variables profiles.yml reads: the same DuckDB bounds, the Spark paths."""
    settings = settings or Settings.from_env()
    config = duckdb_config(settings)
    return {
        "SEGFLOW_DUCKDB_MEMORY_LIMIT": config["memory_limit"],
        "SEGFLOW_DUCKDB_THREADS": config["threads"],
        **settings.spark_env(),  # the spark target's paths (unused by the duckdb target)
    }


@contextmanager
def connect(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path), read_only=read_only, config=duckdb_config())
    conn.execute("set enable_progress_bar = false")  # keeps run logs readable
    settings = Settings.from_env()
    # The engine seam: on Spark, the warehouse file's connection sees dbt's Spark tables and
    # publishes the Python steps' tables back to them (orchestration/spark/tables.py).
    on_spark = settings.engine == "spark" and path.resolve() == settings.duckdb_path
    try:
        if on_spark:
            from orchestration.spark import tables as spark_tables

            spark_tables.attach(conn, settings, temporary=read_only)
        yield conn
        if on_spark and not read_only:
            spark_tables.publish(conn, settings)
    finally:
        conn.close()


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])
