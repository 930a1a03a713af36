"""dbt in the run's own process (orchestration/dbt_parse.py, orchestration/defs/dbt_warm.py):
the project is parsed once per process and reused by every build, and after a build dbt's
DuckDB handle is released, so the run's Python steps can open the warehouse with their own
settings (DuckDB refuses a second in-process connection to a file with other settings)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import DBT_PROJECT, load_raw, simulate

from orchestration.dbt_parse import dbt_args, parsed_manifest
from orchestration.defs.dbt_warm import _release_warehouse
from orchestration.run_window import dbt_vars_arg
from orchestration.settings import Settings

pytestmark = pytest.mark.slow

MODELS = ["stg_events__events", "int_identity_map", "int_events_stitched"]


def test_parsed_once_and_warehouse_released_after_a_build(tmp_path: Path, monkeypatch) -> None:
    from dbt.cli.main import dbtRunner

    data = simulate(users=20, days=6, seed=3, start=date(2025, 3, 3))
    db = tmp_path / "warehouse.duckdb"
    load_raw(db, data, data.dates)
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(db))
    vars_arg = dbt_vars_arg(Settings.from_env())
    target = tmp_path / "target"
    manifest = parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target)
    assert parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target) is manifest  # no re-parse
    # another warehouse file in the same process (the next test module on a worker): the
    # manifest names the file's database, so it is parsed again
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / "other.duckdb"))
    assert parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target) is not manifest
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(db))
    assert parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target) is manifest

    args = ["run", *dbt_args(DBT_PROJECT, "duckdb", target, vars_arg), "--select", *MODELS]
    result = dbtRunner(manifest=manifest).invoke(args)
    assert result.success, result.exception
    try:
        held = duckdb.connect(str(db), config={"threads": 1})  # other settings than dbt's
    except duckdb.ConnectionException:
        held = None  # dbt still holds the file: what _release_warehouse fixes
    if held is not None:
        held.close()
    _release_warehouse()
    with duckdb.connect(str(db), config={"threads": 1}) as conn:
        stitched = conn.execute("select count(*) from main.int_events_stitched").fetchone()[0]
        staged = conn.execute("select count(*) from main.stg_events__events").fetchone()[0]
    assert 0 < stitched <= staged
