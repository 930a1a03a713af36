"""`segflow run`'s SQLite tuning of the Dagster instance (orchestration/instance_sqlite.py): a
real Dagster instance on SQLite, a real materialization inside the block."""

from __future__ import annotations

import sqlite3

import dagster as dg
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from orchestration.instance_sqlite import fast_instance_storage, kept_event_log_connections


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


@dg.asset_check(asset=tiny)
def tiny_is_one() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


MORE = [dg.asset(name=f"more_{i}", deps=[tiny])(lambda: None) for i in range(5)]


def test_event_log_keeps_one_connection_per_shard_and_stores_every_event(tmp_path):
    """Runs inside the block store the same events (run shard) and asset/check rows (index
    shard) as without it, and the SQLite connections they open do not grow with the number of
    events: the new run's shard, created by Dagster's own path, then one kept connection."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        storage = instance.event_log_storage
        baseline = dg.materialize([tiny, tiny_is_one], instance=instance)
        with kept_event_log_connections(storage) as engines:
            dg.materialize([tiny, tiny_is_one], instance=instance)  # the index engine, tables
            small, opened_small = _opening(
                lambda: dg.materialize([tiny, tiny_is_one], instance=instance)
            )
            large, opened_large = _opening(
                lambda: dg.materialize([tiny, tiny_is_one, *MORE], instance=instance)
            )
            assert small.success and large.success
            assert {small.run_id, large.run_id, "index"} <= set(engines)
        assert engines == {}  # disposed at the end
        assert not {"_connect", "has_table"} & set(vars(storage))  # Dagster's own methods again
        assert _kinds(instance, baseline.run_id) == _kinds(instance, small.run_id)
        assert dg.DagsterEventType.ASSET_CHECK_EVALUATION in _kinds(instance, small.run_id)
        check = storage.get_latest_asset_check_execution_by_key([tiny_is_one.check_key])
        assert check[tiny_is_one.check_key].run_id == large.run_id
        latest = instance.get_latest_materialization_event(dg.AssetKey("more_4"))
        assert latest.run_id == large.run_id
    # 5 more assets: ~25 more events and index writes, not one more connection
    assert len(instance.all_logs(large.run_id)) > len(instance.all_logs(small.run_id)) + 20
    assert opened_large == opened_small


def _opening(launch) -> tuple:
    """launch()'s result and how many SQLite connections to event log shards it opened."""
    opened = []

    def record(dbapi_connection, _record) -> None:
        path = dbapi_connection.execute("pragma database_list").fetchall()[0][2]
        if "/history/runs/" in path:
            opened.append(path)

    event.listen(Engine, "connect", record)
    try:
        return launch(), len(opened)
    finally:
        event.remove(Engine, "connect", record)


def _kinds(instance, run_id) -> list:
    return sorted(
        (e.dagster_event.event_type for e in instance.all_logs(run_id) if e.dagster_event),
        key=lambda kind: kind.value,
    )
