"""The dbt project on Spark (dbt-spark, session method, pyspark local) equals the DuckDB build.

The same raw partitions go to DuckDB (one full build) and, as Parquet, to Spark, which builds
in two runs: the first days, then the rest as an incremental run over the new window, so the
Spark variants of the incremental strategies (replace_where, delete+insert) are exercised:
the date-partitioned tables are rewritten partition by partition (insert overwrite of the
touched days only), the others as a whole.
Every table of schema main must be equal, floats within 1e-9 relative.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import load_raw, run_dbt, simulate
from support.engine_compare import duckdb_tables, spark_tables, table_differences
from support.java import java_major

from orchestration.settings import Settings
from orchestration.spark.raw_export import export_raw

pytestmark = pytest.mark.slow

USERS, DAYS, TAIL_DAYS = 50, 42, 4


if java_major() < 17:
    pytest.skip("Java 17+ is missing (make java installs it)", allow_module_level=True)


def _segment_inputs(db: Path, sources_dir: Path) -> None:
    """user_segments / user_scores (the Python steps' outputs) in DuckDB and as Parquet."""
    conn = duckdb.connect(str(db))
    try:
        conn.execute("""
            create or replace table main.user_segments as
            select user_id, snapshot_date as segment_date,
                   list_sort(case when days_since_signup < 7 then ['new_users']
                                  else ['established', 'smb'] end)::varchar[] as segments
            from main.fct_user_features""")
        conn.execute("""
            create or replace table main.user_scores as
            select user_id, snapshot_date as score_date, 0.25 as churn_probability,
                   120.0 as ltv_pred from main.fct_user_features""")
        for table in ("user_segments", "user_scores"):
            folder = sources_dir / "main" / table
            folder.mkdir(parents=True, exist_ok=True)
            conn.execute(f"copy main.{table} to '{folder / 'part-0.parquet'}' (format parquet)")
    finally:
        conn.close()


PARTITIONED = ("stg_events__events", "int_user_activity_daily")


def _partition_files(warehouse: Path) -> dict[str, dict[str, frozenset[str]]]:
    """Per partitioned table: partition folder -> its data file names."""
    out = {}
    for table in PARTITIONED:
        folder = warehouse / "main.db" / table
        out[table] = {
            p.name: frozenset(f.name for f in p.glob("*.parquet"))
            for p in folder.iterdir()
            if p.is_dir() and "=" in p.name
        }
        assert out[table], f"{table} is not partitioned on Spark"
    return out


@pytest.mark.timeout(1800)  # two Spark runs; minutes on a loaded 2-core machine
def test_spark_build_equals_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = simulate(users=USERS, days=DAYS, seed=11)
    duck = tmp_path / "duckdb.duckdb"
    load_raw(duck, data)
    run_dbt(["run", "--exclude", "tag:after_segments"], duck, tmp_path / "duck_target")
    sources = tmp_path / "spark_sources"
    _segment_inputs(duck, sources)
    run_dbt(["run", "--select", "tag:after_segments"], duck, tmp_path / "duck_target")

    # Spark: the raw partitions reach it as Parquet exported from an ingest-side DuckDB file.
    warehouse = tmp_path / "spark_warehouse"
    for name, value in {
        "SEGFLOW_DBT_TARGET": "spark",
        "SEGFLOW_SPARK_SOURCES_DIR": str(sources),
        "SEGFLOW_SPARK_WAREHOUSE": str(warehouse),
        "SEGFLOW_SPARK_METASTORE": str(tmp_path / "spark_metastore"),
        "SEGFLOW_SPARK_SHUFFLE_PARTITIONS": "1",
        **replace(Settings.from_env(), spark_small_data=True).spark_tuning_env(),
    }.items():
        monkeypatch.setenv(name, value)
    ingest = tmp_path / "ingest.duckdb"
    head, tail = data.dates[:-TAIL_DAYS], data.dates[-TAIL_DAYS:]
    load_raw(ingest, data, head)
    with duckdb.connect(str(ingest)) as conn:
        export_raw(conn, sources)
    run_dbt(["run", "--exclude", "tag:after_segments"], ingest, tmp_path / "spark_target")
    before = _partition_files(warehouse)
    load_raw(ingest, data, tail)
    with duckdb.connect(str(ingest)) as conn:
        export_raw(conn, sources, tail)
    window = {"min_date": tail[0].isoformat(), "max_date": data.dates[-1].isoformat()}
    run_dbt(["run"], ingest, tmp_path / "spark_target", window)
    after = _partition_files(warehouse)
    # insert_overwrite by date partition: the incremental run rewrote the days it touched, not
    # the whole table (Spark names every written file anew).
    for table in PARTITIONED:
        kept = [p for p in before[table] if after[table].get(p) == before[table][p]]
        rewritten = [p for p in after[table] if after[table][p] != before[table].get(p)]
        assert kept and rewritten, f"{table}: kept {len(kept)}, rewritten {len(rewritten)}"

    expected, actual = duckdb_tables(duck), spark_tables(warehouse)
    expected = {k: v for k, v in expected.items() if k not in ("user_segments", "user_scores")}
    assert sorted(actual) == sorted(expected)
    assert len(expected["fct_user_features"]) > USERS * 10
    assert len(expected["ml_churn_training"]) > 0
    problems = [
        p for name in expected for p in table_differences(expected[name], actual[name], name)
    ]
    assert not problems, "\n".join(problems[:20])
