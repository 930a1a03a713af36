"""The Spark engine's seam without a JVM: the warehouse connection's views over Spark's table
folders and the publish of the Python steps' tables, and the metastore's one-process lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from orchestration import warehouse
from orchestration.settings import Settings
from orchestration.spark import metastore
from orchestration.spark.tables import step_tables, warehouse_dir


@pytest.fixture
def spark_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_ENGINE", "spark")
    monkeypatch.delenv("SEGFLOW_DUCKDB_PATH", raising=False)
    return Settings.from_env()


def _spark_table(settings: Settings, name: str, sql: str, partition: str | None = None) -> None:
    """A table folder as Spark writes it: part files, a _SUCCESS marker, partition folders."""
    folder = warehouse_dir(settings) / name
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").write_text("")
    with duckdb.connect() as conn:
        if partition:
            conn.execute(
                f"copy ({sql}) to '{folder}' (format parquet, partition_by ({partition}), overwrite_or_ignore)"
            )
        else:
            conn.execute(
                f"copy ({sql}) to '{folder / 'part-00000.snappy.parquet'}' (format parquet)"
            )


def test_connection_sees_spark_tables_and_publishes_step_tables(spark_settings: Settings) -> None:
    _spark_table(spark_settings, "fct_user_features", "select 'u1' as user_id, 2.5 as x")
    _spark_table(
        spark_settings,
        "int_daily",
        "select range as n, date '2026-05-01' + range::int as day from range(3)",
        partition="day",
    )
    with warehouse.connect(spark_settings.duckdb_path) as conn:
        assert conn.execute("select * from main.fct_user_features").fetchall() == [("u1", 2.5)]
        assert conn.execute("select count(*), sum(n) from main.int_daily").fetchone() == (3, 3)
        conn.execute("create table main.user_scores as select 'u1' as user_id, 0.5::double as p")
    published = spark_settings.spark_sources_dir / "main" / "user_scores"
    assert "user_scores" in step_tables() and "user_segments" in step_tables()
    first = (published / "part-0.parquet").stat().st_mtime_ns
    with duckdb.connect() as conn:
        assert conn.execute(f"select * from '{published}/*.parquet'").fetchall() == [("u1", 0.5)]
    with warehouse.connect(spark_settings.duckdb_path) as conn:  # unchanged: not rewritten
        pass
    assert (published / "part-0.parquet").stat().st_mtime_ns == first
    with warehouse.connect(spark_settings.duckdb_path) as conn:
        conn.execute("update main.user_scores set p = 0.75")
    with duckdb.connect() as conn:
        assert conn.execute(f"select p from '{published}/*.parquet'").fetchall() == [(0.75,)]
    with warehouse.connect(spark_settings.duckdb_path, read_only=True) as conn:
        assert conn.execute("select count(*) from main.int_daily").fetchone() == (3,)


def test_duckdb_engine_attaches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("SEGFLOW_ENGINE", raising=False)
    monkeypatch.delenv("SEGFLOW_DUCKDB_PATH", raising=False)
    settings = Settings.from_env()
    _spark_table(settings, "fct_user_features", "select 1 as x")
    with warehouse.connect(settings.duckdb_path) as conn:
        assert conn.execute(
            "select count(*) from duckdb_views() where not internal"
        ).fetchone() == (0,)


def test_second_spark_process_on_a_metastore_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # this worker may hold its own metastore for life (an earlier Spark test ran here)
    monkeypatch.setattr(metastore, "_HELD", [])
    store = tmp_path / "metastore_db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from orchestration.spark import metastore\n"
            f"metastore.hold_for_process({str(store)!r})\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with (
            pytest.raises(
                metastore.MetastoreBusyError, match=rf"pid {holder.pid}.*SEGFLOW_SPARK_DIR"
            ),
            metastore.for_dbt("spark", store),
        ):
            pass
        assert time.monotonic() - started < 5
        with metastore.for_dbt("duckdb", store):  # other targets take no lock
            pass
    finally:
        holder.kill()
        holder.wait()
    with metastore.for_dbt("spark", store):  # free again once its holder is gone
        pass


def test_in_memory_catalog_refuses_an_earlier_runs_warehouse(tmp_path, monkeypatch) -> None:
    """An in-memory catalog knows none of an earlier process's tables: a warehouse holding
    some is refused with the way out; a fresh one is accepted. A bad value names the setting."""
    from orchestration.settings import SettingError
    from orchestration.spark.session import _require_fresh_warehouse

    monkeypatch.setattr(metastore, "_HELD", [])  # as a process that started no Spark engine
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_SPARK_CATALOG", "in-memory")
    settings = Settings.from_env()
    assert settings.spark_env()["SEGFLOW_SPARK_CATALOG"] == "in-memory"
    _require_fresh_warehouse(settings)  # nothing built yet
    (warehouse_dir(settings) / "fct_user_features").mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"in-memory keeps no catalog.*fct_user_features"):
        _require_fresh_warehouse(settings)
    monkeypatch.setenv("SEGFLOW_SPARK_CATALOG", "derby")
    with pytest.raises(SettingError, match="SEGFLOW_SPARK_CATALOG"):
        Settings.from_env()


def test_local_master_tuning_leaves_a_cluster_on_spark_defaults(monkeypatch) -> None:
    """A local master lists partition folders in the driver and writes no _SUCCESS files; any
    other master keeps Spark's defaults. profiles.yml's spark target sets the same keys as the
    Python steps' session (one catalog, one behaviour), driver memory aside."""
    import yaml

    from orchestration.settings import DBT_PROJECT_DIR
    from orchestration.spark.session import session_config

    listing = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    markers = "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs"
    monkeypatch.setenv("SEGFLOW_SPARK_MASTER", "local[2]")
    local = session_config(Settings.from_env())
    assert (local[listing], local[markers]) == ("100000", "false")
    monkeypatch.setenv("SEGFLOW_SPARK_MASTER", "spark://spark-master:7077")
    cluster = session_config(Settings.from_env())
    assert (cluster[listing], cluster[markers]) == ("32", "true")
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    target = profile["segflow"]["outputs"]["spark"]["server_side_parameters"]
    assert set(target) - {"spark.driver.memory"} == set(cluster)
