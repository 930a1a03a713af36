"""The run window reaches dbt through the one-row table `segflow_run_window`, not through
`--vars`: a new day keeps dbt's partial parse valid (no re-parse), the incremental models and
their windowed tests read the window, and the result equals a full rebuild row for row."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import EVENT_MODELS as MODELS
from dbt_fixtures import load_raw, run_dbt, simulate

from orchestration.run_window import RunWindow, window_sql

pytestmark = pytest.mark.slow

REPARSE = "Unable to do partial parsing"


def _log_after(target: Path, offset: int) -> str:
    return (target / "logs" / "dbt.log").read_text()[offset:]


def _log_size(target: Path) -> int:
    path = target / "logs" / "dbt.log"
    return len(path.read_text()) if path.exists() else 0


def _rows(db: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f"select * from main.{table} order by all").fetchall()


def test_new_day_via_window_table_needs_no_reparse_and_equals_full_build(tmp_path: Path) -> None:
    data = simulate(users=40, days=24, seed=11, start=date(2025, 2, 3))
    history, new_day = data.dates[:-1], data.dates[-1]
    db, target = tmp_path / "daily.duckdb", tmp_path / "target"
    load_raw(db, data, history)
    run_dbt(["parse"], db, target, cli=True)
    run_dbt(["run", "--full-refresh", "--select", *MODELS], db, target, cli=True)

    load_raw(db, data, [new_day])
    with duckdb.connect(str(db)) as conn:
        conn.execute(window_sql(RunWindow(new_day, new_day)))
    offset = _log_size(target)
    run_dbt(["build", "--select", *MODELS], db, target, cli=True)  # models + their windowed tests
    log = _log_after(target, offset)
    assert REPARSE not in log, log[-3000:]
    compiled = next((target / "compiled").rglob("int_sessions.sql")).read_text()
    assert f"'{new_day.isoformat()}'" in compiled  # the window, read from the table
    with duckdb.connect(str(db), read_only=True) as conn:
        left = conn.execute(
            "select count(*) from information_schema.tables where table_name = 'segflow_run_window'"
        ).fetchone()[0]
    assert left == 0, "the window lives for one dbt invocation (on-run-end drops it)"

    full_db = tmp_path / "full.duckdb"
    load_raw(full_db, data, data.dates)
    run_dbt(["run", "--full-refresh", "--select", *MODELS], full_db, tmp_path / "target_full")
    for model in MODELS:
        assert _rows(db, model) == _rows(full_db, model), model

    # The control: the same day through --vars changes dbt's vars, so dbt re-parses.
    offset = _log_size(target)
    window = {"min_date": new_day.isoformat(), "max_date": "2999-12-31"}
    run_dbt(["run", "--select", "int_sessions"], db, target, window, cli=True)
    assert REPARSE in _log_after(target, offset)
