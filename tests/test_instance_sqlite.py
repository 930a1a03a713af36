"""`segflow run`'s SQLite tuning of the Dagster instance (orchestration/instance_sqlite.py): a
real Dagster instance on SQLite, a real materialization inside the block."""

from __future__ import annotations

import sqlite3

import dagster as dg
from sqlalchemy import create_engine, text

from orchestration.instance_sqlite import fast_instance_storage


@dg.asset
def tiny() -> int:
    return 1


def _synchronous(path) -> int:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return connection.execute(text("pragma synchronous")).scalar_one()
    finally:
        engine.dispose()


def test_instance_files_get_normal_sync_and_a_kept_connection(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    other = tmp_path / "elsewhere.db"
    sqlite3.connect(other).close()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        with fast_instance_storage(home) as kept:
            result = dg.materialize([tiny], instance=instance)
            assert result.success
            run_shard = home / "history" / "runs" / f"{result.run_id}.db"
            assert str(run_shard) in kept and all(p.startswith(str(home)) for p in kept)
            assert _synchronous(run_shard) == 1  # NORMAL
            assert _synchronous(other) == 2  # FULL: files outside the home are not touched
        assert kept == {}  # closed at the end
        assert _synchronous(run_shard) == 2  # the listener is gone
        events = instance.all_logs(result.run_id)
        assert any(e.dagster_event and e.dagster_event.is_step_success for e in events)
