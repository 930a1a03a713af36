"""The engine seam for segflow's Python steps on the Spark engine (SEGFLOW_ENGINE=spark).

dbt on Spark writes every model as a Parquet table under the Spark warehouse folder
(`<SEGFLOW_SPARK_DIR>/warehouse/main.db/<model>/`). The Python steps (training, scoring,
segments, checks, the sync's diff, the report) keep their one code path: the connection
`orchestration.warehouse.connect` hands them sees each Spark table as a view over its Parquet
files (`attach`), read in streamed batches by DuckDB, never collected whole. The tables those
steps write that dbt on Spark reads back (the dbt sources of schema main: user_scores,
user_segments) are published as Parquet to `<SEGFLOW_SPARK_DIR>/sources/main/<table>/`
when the connection closes (`publish`), where macro register_source_tables finds them.

No Spark session runs in the orchestration process, so the embedded Derby metastore stays
free for dbt's own session (one process at a time; orchestration.spark.metastore).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import duckdb
import yaml

from orchestration.settings import DBT_PROJECT_DIR, Settings

SCHEMA = "main"
SOURCES_FILE = DBT_PROJECT_DIR / "models" / "staging" / "_sources.yml"


@cache
def step_tables() -> tuple[str, ...]:
    """The Python steps' tables dbt reads: the dbt sources of schema main (_sources.yml)."""
    sources = yaml.safe_load(SOURCES_FILE.read_text())["sources"]
    return tuple(
        table["name"]
        for source in sources
        if source.get("schema") == SCHEMA
        for table in source["tables"]
    )


def warehouse_dir(settings: Settings) -> Path:
    return Path(settings.spark_env()["SEGFLOW_SPARK_WAREHOUSE"]) / f"{SCHEMA}.db"


def table_files(folder: Path) -> list[str]:
    """A Spark table's data files (partition folders included; staging and marker files not)."""
    return sorted(
        str(p)
        for p in folder.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attach(conn: duckdb.DuckDBPyConnection, settings: Settings, temporary: bool = False) -> int:
    """Expose every Spark table of schema main as view main.<table>; returns how many.

    A folder Spark is still writing (no data file yet) is skipped. A DuckDB base table of the
    same name (the Python steps' own tables) wins: it is never replaced by a view.
    """
    root = warehouse_dir(settings)
    if not root.is_dir():
        return 0
    own = {
        r[0]
        for r in conn.execute(
            "select table_name from information_schema.tables "
            "where table_schema = ? and table_type = 'BASE TABLE'",
            [SCHEMA],
        ).fetchall()
    }
    attached = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in own):
        files = table_files(folder)
        if not files:
            continue
        partitioned = any("=" in Path(f).parent.name for f in files)
        view = f'"{folder.name}"' if temporary else f'{SCHEMA}."{folder.name}"'
        conn.execute(
            f"create or replace {'temp ' if temporary else ''}view {view} as select * from "
            f"read_parquet([{', '.join(_quote(f) for f in files)}], "
            f"hive_partitioning = {str(partitioned).lower()})"
        )
        attached += 1
    return attached


def publish(conn: duckdb.DuckDBPyConnection, settings: Settings) -> list[str]:
    """Write the Python steps' tables dbt reads to the Spark sources folder when they changed
    since the last publish (fingerprint: row count and an order-free hash of the rows)."""
    published = []
    for table in step_tables():
        exists = conn.execute(
            "select count(*) from information_schema.tables where table_schema = ? "
            "and table_name = ? and table_type = 'BASE TABLE'",
            [SCHEMA, table],
        ).fetchone()[0]
        if not exists:
            continue
        folder = settings.spark_sources_dir / SCHEMA / table
        stamp = folder / "_segflow_fingerprint"
        rows, digest = conn.execute(
            f"select count(*), coalesce(bit_xor(hash(t)), 0) from {SCHEMA}.{table} t"
        ).fetchone()
        fingerprint = f"{rows}:{digest}"
        if stamp.exists() and stamp.read_text() == fingerprint:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "_part-0.parquet.tmp"
        conn.execute(f"copy {SCHEMA}.{table} to {_quote(str(tmp))} (format parquet)")
        tmp.replace(folder / "part-0.parquet")
        stamp.write_text(fingerprint)
        published.append(table)
    return published
