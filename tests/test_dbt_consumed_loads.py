"""Consumed-load markers (dbt_project/macros/consumed_loads.sql): a daily run of the staging and
intermediate event models reads only the raw partitions loaded since each model last ran
("narrow") when that is safe, and otherwise re-reads the late-arrival window ("wide"). Either
way the tables equal a full rebuild of the same raw data: after a run whose dbt failed after
its load (retried), after a model failed mid-run, and after an older partition was re-loaded."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import EVENT_MODELS as MODELS
from dbt_fixtures import RawData, load_raw, run_dbt, simulate

pytestmark = pytest.mark.slow  # builds warehouses end to end; `make test-fast` skips it

USERS, DAYS = 60, 40


@pytest.fixture(scope="module")
def raw_data() -> RawData:
    return simulate(users=USERS, days=DAYS, seed=11, start=date(2025, 3, 3))


def _window(day: date) -> dict:
    return {"min_date": day.isoformat(), "max_date": (day + timedelta(days=1)).isoformat()}


def _history(tmp: Path, data: RawData, days: list[date]) -> Path:
    db = tmp / "warehouse.duckdb"
    load_raw(db, data, days)
    run_dbt(["run", "--full-refresh", "--select", *MODELS], db, tmp / "target")
    return db


def _assert_equals_full_rebuild(db: Path, data: RawData, tmp: Path) -> None:
    full = tmp / "full.duckdb"
    load_raw(full, data, [])  # empty raw tables; then the daily warehouse's raw events
    conn = duckdb.connect(str(full))
    try:
        conn.execute(f"attach '{db}' as daily (read_only)")
        conn.execute("insert into raw.events select * from daily.raw.events")
    finally:
        conn.close()
    run_dbt(["run", "--full-refresh", "--select", *MODELS], full, tmp / "target_full")
    conn = duckdb.connect(str(db), read_only=True)
    try:
        conn.execute(f"attach '{full}' as full_build (read_only)")
        for t in MODELS:
            diff = conn.execute(
                f"""select count(*) from (
                (select * from main.{t} except all select * from full_build.main.{t})
                union all
                (select * from full_build.main.{t} except all select * from main.{t}))"""
            ).fetchone()[0]
            assert diff == 0, f"{t}: {diff} rows differ from a full rebuild"
    finally:
        conn.close()


def _marked(db: Path, model: str, day: date) -> bool:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return (
            conn.execute(
                "select count(*) from main.segflow_consumed_loads where model = ? and partition_date = ?",
                [model, day],
            ).fetchone()[0]
            == 1
        )
    finally:
        conn.close()


def test_retried_day_after_failed_dbt_and_failed_model(tmp_path: Path, raw_data: RawData) -> None:
    """Day D loaded, dbt failed before the models (nothing marked); the retry loads D again
    and only staging succeeds (a later model failed: staging marked D, the others did not);
    the next retry runs everything: each model processes what it has not marked."""
    days = raw_data.dates
    day = days[-1]
    db = _history(tmp_path, raw_data, days[:-1])
    load_raw(db, raw_data, [day])  # the failed run's load; its dbt never ran
    assert not _marked(db, "stg_events__events", day)
    load_raw(db, raw_data, [day])  # the retry re-loads the day; staging succeeds
    run_dbt(["run", "--select", "stg_events__events"], db, tmp_path / "t1", _window(day))
    assert _marked(db, "stg_events__events", day)
    assert not _marked(db, "int_events_stitched", day)
    run_dbt(["run", "--select", *MODELS], db, tmp_path / "t2", _window(day))
    assert all(_marked(db, m, day) for m in MODELS)
    _assert_equals_full_rebuild(db, raw_data, tmp_path)


def test_reloaded_partition_runs_wide(tmp_path: Path, raw_data: RawData) -> None:
    """A processed partition of the window re-loaded with rows removed and a newer
    _loaded_at, then the new day: the run notices the re-load and re-reads the window."""
    days = raw_data.dates
    day, reloaded = days[-1], days[-2]
    db = _history(tmp_path, raw_data, days[:-1])
    conn = duckdb.connect(str(db))
    try:
        conn.execute(
            """
            delete from raw.events where rowid in (
                select rowid from raw.events where _partition_date = ? and user_id is not null
                and cast("timestamp" as date) >= ? order by message_id limit 5)""",
            [reloaded, days[-4]],  # events the window's re-read covers (from reprocess_from)
        )
        conn.execute(
            "update raw.events set _loaded_at = ? where _partition_date = ?",
            [datetime(2025, 6, 1), reloaded],
        )
    finally:
        conn.close()
    load_raw(db, raw_data, [day])
    run_dbt(["run", "--select", *MODELS], db, tmp_path / "t1", _window(day))
    _assert_equals_full_rebuild(db, raw_data, tmp_path)


def test_missing_day_loaded_late_runs_wide(tmp_path: Path, raw_data: RawData) -> None:
    """A day of the window was missing when the history was built and arrives with the new
    day: it is older than the last processed partition, so the run re-reads the window (as
    before markers, from reprocess_from: the late day's events dated before it are left out
    here, a wide run does not reach them)."""
    days = raw_data.dates
    day, missing = days[-1], days[-3]
    db = _history(tmp_path, raw_data, [d for d in days[:-1] if d != missing])
    load_raw(db, raw_data, [missing, day])
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            'delete from raw.events where _partition_date = ? and cast("timestamp" as date) < ?',
            [missing, days[-4]],
        )
    run_dbt(["run", "--select", *MODELS], db, tmp_path / "t1", _window(day))
    assert _marked(db, "int_sessions", missing)
    _assert_equals_full_rebuild(db, raw_data, tmp_path)
