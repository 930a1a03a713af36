"""A 30-day backfill through Dagster is one run and equals the same 30 days built the way the
schedule builds them (real dbt): daily runs from an empty table, a ranged catch-up run (after
an outage), then daily runs again across a weekend into a new week. Every path by which a day
gets built (first day, next day, a range after daily runs, a day after a range) is compared
against the one-run backfill; the last daily days read 28 days of history built by all of
them."""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

START = date(2026, 4, 1)
DAYS = 30
# (first, last) day of each run: three daily runs, a catch-up range, then daily runs from Sunday
# 2026-04-26 (a weekend and a week boundary) to the end.
CATCH_UP = (date(2026, 4, 4), date(2026, 4, 25))
SCHEDULE = (
    *[(START + timedelta(days=i),) * 2 for i in range(3)],
    CATCH_UP,
    *[(CATCH_UP[1] + timedelta(days=i),) * 2 for i in range(1, 6)],
)
COMPARED = ("int_sessions", "int_user_activity_daily", "fct_user_features", "int_events_stitched")


@pytest.fixture(scope="module")
def code_location(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("backfill")
    keys = ("SEGFLOW_HOME", "SEGFLOW_DUCKDB_PATH", "DAGSTER_HOME")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        {
            "SEGFLOW_HOME": str(home),
            "SEGFLOW_DUCKDB_PATH": str(home / "wh.duckdb"),
            "DAGSTER_HOME": str(home / "dagster_home"),
        }
    )
    from demo.saas import generate
    from orchestration.cli import prepare
    from orchestration.settings import Settings

    settings = Settings.from_env()
    generate(settings.demo_dir, settings.demo_truth_dir, users=120, days=DAYS, seed=3, start=START)
    prepare(settings)
    from orchestration.definitions import defs
    from orchestration.defs import transform

    yield defs(), settings, transform.selection
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def _run(definitions, selection: dg.AssetSelection, **tags) -> None:
    result = dg.materialize(
        list(definitions.assets),
        selection=selection,
        resources=definitions.resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags=tags,
    )
    assert result.success


def _range(start: date, end: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


def test_30_day_backfill_in_one_run_equals_daily_runs(code_location, tmp_path):
    definitions, settings, models = code_location
    end = START + timedelta(days=DAYS - 1)
    base = dg.AssetSelection.groups("ingest") | dg.AssetSelection.assets(*models.upstream)
    incremental = dg.AssetSelection.assets(*models.incremental).without_checks()
    _run(definitions, base, **_range(START, end))
    shutil.copy(settings.duckdb_path, tmp_path / "base.duckdb")

    _run(definitions, incremental, **_range(START, end))  # the backfill: one run, one dbt call
    shutil.copy(settings.duckdb_path, tmp_path / "ranged.duckdb")

    shutil.copy(tmp_path / "base.duckdb", settings.duckdb_path)
    for first, last in SCHEDULE:
        if first == last:
            _run(definitions, incremental, **{"dagster/partition": first.isoformat()})
        else:
            _run(definitions, incremental, **_range(first, last))

    with duckdb.connect(str(settings.duckdb_path)) as conn:
        conn.execute(f"attach '{tmp_path / 'ranged.duckdb'}' as ranged (read_only)")
        for table in COMPARED:
            rows = conn.execute(f"select count(*) from main.{table}").fetchone()[0]
            assert rows > 0, table
            only_daily = conn.execute(
                f"select count(*) from (select * from main.{table} except all "
                f"select * from ranged.main.{table})"
            ).fetchone()[0]
            only_ranged = conn.execute(
                f"select count(*) from (select * from ranged.main.{table} except all "
                f"select * from main.{table})"
            ).fetchone()[0]
            assert (only_daily, only_ranged) == (0, 0), table
        days = conn.execute(
            "select count(distinct snapshot_date) from main.fct_user_features"
        ).fetchone()[0]
    assert days == DAYS
