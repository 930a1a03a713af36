"""Raw ingest through real Dagster execution on a real DuckDB file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from demo.saas import generate
from orchestration.defs.ingest import raw_assets
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource

START = date(2026, 3, 2)


@pytest.fixture(scope="module")
def demo_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate(root / "landing", root / "truth", users=300, days=6, seed=11, start=START)
    return root / "landing"


def _materialize(db: Path, landing: Path, monkeypatch: pytest.MonkeyPatch, **tags) -> None:
    monkeypatch.setenv("SEGFLOW_DEMO_DIR", str(landing))
    result = dg.materialize(
        raw_assets,
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(db)),
            "segflow": SegflowSettingsResource(),
        },
        tags=tags,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success


def _snapshot(db: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {
            table: conn.execute(
                f"select * exclude (_loaded_at) from raw.{table} order by all"
            ).fetchall()
            for table in ("crm_contacts", "events", "billing_invoices", "quarantine")
            if table != "quarantine"
        }


def test_range_in_one_run_equals_single_days_and_a_day_again_changes_nothing(
    tmp_path, demo_landing, monkeypatch
):
    """A range in one run loads what its days one by one load; loading a day again (the
    daily warehouse's last day) is idempotent: same rows, no duplicate message ids."""
    ranged, daily = tmp_path / "ranged.duckdb", tmp_path / "daily.duckdb"
    _materialize(
        ranged,
        demo_landing,
        monkeypatch,
        **{
            "dagster/asset_partition_range_start": "2026-03-02",
            "dagster/asset_partition_range_end": "2026-03-04",
        },
    )
    for day in ("2026-03-02", "2026-03-03", "2026-03-04"):
        _materialize(daily, demo_landing, monkeypatch, **{"dagster/partition": day})
    ranged_rows, daily_rows = _snapshot(ranged), _snapshot(daily)
    assert ranged_rows == daily_rows
    with duckdb.connect(str(ranged), read_only=True) as conn:
        days = conn.execute("select count(distinct _partition_date) from raw.events").fetchone()[0]
    assert days == 3

    _materialize(daily, demo_landing, monkeypatch, **{"dagster/partition": "2026-03-04"})
    assert _snapshot(daily) == daily_rows
    with duckdb.connect(str(daily), read_only=True) as conn:
        day_events, dupes = conn.execute(
            "select count(*) filter (where _partition_date = date '2026-03-04'), "
            "count(*) - count(distinct message_id) from raw.events"
        ).fetchone()
    assert day_events > 100 and dupes == 0
