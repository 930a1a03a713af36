"""dbt in the run's own process (orchestration/dbt_parse.py, orchestration/defs/dbt_warm.py):
the project is parsed once per process and warehouse, every invocation runs on a fresh copy of
that parse (dbt mutates the manifest it runs on: a second build on the same object referenced
ephemeral CTEs it no longer injected), each invocation's artifacts go to a private target folder
removed afterwards, and dbt's DuckDB handle is released after each invocation so the run's
Python steps can open the warehouse with their own settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import DBT_PROJECT, load_raw, simulate

from orchestration import dbt_parse
from orchestration.dbt_parse import invoke, parsed_manifest
from orchestration.dbt_selection import in_process_flags
from orchestration.run_window import dbt_vars_arg
from orchestration.settings import Settings

pytestmark = pytest.mark.slow

MODELS = ["stg_events__events", "int_identity_map", "int_events_stitched"]
EPHEMERAL_CTE = "__dbt__cte__int_segment_members as ("


def _warehouse(path: Path, users: int, seed: int) -> Path:
    data = simulate(users=users, days=6, seed=seed, start=date(2025, 3, 3))
    load_raw(path, data, data.dates)
    return path


def _counts(db: Path) -> tuple[int, int]:
    with duckdb.connect(str(db), config={"threads": 1}) as conn:  # other settings than dbt's
        stitched = conn.execute("select count(*) from main.int_events_stitched").fetchone()[0]
        staged = conn.execute("select count(*) from main.stg_events__events").fetchone()[0]
    return stitched, staged


def _compiled(vars_arg: list[str], model: str) -> str:
    with invoke("compile", DBT_PROJECT, "duckdb", vars_arg, ["--select", model]) as run:
        assert run.result.success, run.result.exception
        (node,) = [r.node for r in run.result.result.results if r.node.name == model]
        return node.compiled_code


def test_parsed_once_per_warehouse_and_fresh_for_every_call(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    vars_arg = dbt_vars_arg(Settings.from_env())
    target = tmp_path / "target"
    parses = len(dbt_parse.PARSES)
    first = parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target)
    second = parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target)
    assert second is not first and second.nodes.keys() == first.nodes.keys()
    # connection settings are read at each invocation; they do not change the manifest
    monkeypatch.setenv("SEGFLOW_DUCKDB_THREADS", "1")
    parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target)
    assert len(dbt_parse.PARSES) <= parses + 1  # this key was parsed at most once
    # another warehouse file (the next test module on a worker): every node records the file's
    # database, so it is parsed again
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / "other.duckdb"))
    other = parsed_manifest(DBT_PROJECT, "duckdb", vars_arg, target)
    assert {n.database for n in other.nodes.values() if n.resource_type == "model"} == {"other"}
    assert dbt_parse.PARSES[-1][-1].endswith("other.duckdb")


def test_ephemeral_models_injected_in_every_invocation(tmp_path: Path, monkeypatch) -> None:
    """The failure a shared manifest gave: the second compile in one process no longer injected
    the ephemeral int_segment_members into fct_segment_kpis."""
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    vars_arg = dbt_vars_arg(Settings.from_env())
    for _ in range(2):
        assert EPHEMERAL_CTE in _compiled(vars_arg, "fct_segment_kpis")


def test_builds_twice_and_on_two_warehouses_in_one_process(tmp_path: Path, monkeypatch) -> None:
    first = _warehouse(tmp_path / "first.duckdb", users=20, seed=3)
    second = _warehouse(tmp_path / "second.duckdb", users=35, seed=4)
    args = ["--select", *MODELS]
    for db in (first, first, second):
        monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(db))
        vars_arg = dbt_vars_arg(Settings.from_env())
        with invoke("build", DBT_PROJECT, "duckdb", vars_arg, args) as run:
            assert run.result.success, run.result.exception
            assert (run.target_dir / "run_results.json").exists()
            scratch = run.target_dir
        assert not scratch.exists()  # the invocation's artifacts are removed
        stitched, staged = _counts(db)  # dbt released the file
        assert 0 < stitched <= staged
    assert _counts(first) != _counts(second)  # each build wrote its own warehouse


def _loggers() -> list[str]:
    from dbt_common.events.functions import get_event_manager

    return [logger.name for logger in get_event_manager().loggers]


def test_daily_steps_write_no_json_artifacts_and_no_debug_log_file(
    tmp_path: Path, monkeypatch
) -> None:
    """The daily job's flags (in_process_flags): no manifest.json / run_results.json and no
    dbt.log (dbt formats every event once per logger); DBT_LOG_LEVEL_FILE set by the caller
    keeps the file log. The console log (the run's log) stays."""
    db = _warehouse(tmp_path / "warehouse.duckdb", users=15, seed=5)
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(db))
    vars_arg = dbt_vars_arg(Settings.from_env())
    args = ["--select", MODELS[0], *in_process_flags()]
    with invoke("build", DBT_PROJECT, "duckdb", vars_arg, args) as run:
        assert run.result.success, run.result.exception
        assert not (run.target_dir / "run_results.json").exists()
        assert not (run.target_dir / "manifest.json").exists()
        assert "file_log" not in _loggers() and "stdout_log" in _loggers()
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")
    assert "--log-level-file" not in in_process_flags()
    with invoke("build", DBT_PROJECT, "duckdb", vars_arg, ["--select", MODELS[0]]) as run:
        assert run.result.success, run.result.exception
        assert "file_log" in _loggers()
