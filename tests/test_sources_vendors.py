"""One fixture per vendor preset (tests/fixtures/vendors/, written from each vendor's documented
export format by build.py) loads through the Dagster ingest assets with exact counts of events,
users, contacts, invoices and revenue, identity matches, and per-file metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.defs.ingest import raw_assets
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from tests.fixtures.vendors.expected import EXPECTED

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

VENDORS = Path(__file__).parent / "fixtures" / "vendors"
RANGE = {
    "dagster/asset_partition_range_start": "2025-03-03",
    "dagster/asset_partition_range_end": "2025-03-04",
}


def test_every_preset_has_a_fixture():
    from orchestration.sources.presets import PRESETS

    # loaded by the segment_warehouse fixture
    covered = set(EXPECTED) | {"segment_warehouse_users", "segment_warehouse_orders"}
    assert covered == set(PRESETS)
    assert {p.name for p in VENDORS.iterdir() if (p / "landing").is_dir()} == set(EXPECTED)


def _run(tmp_path: Path, name: str, monkeypatch) -> tuple[dg.ExecuteInProcessResult, Path]:
    landing = tmp_path / "landing"
    shutil.copytree(VENDORS / name / "landing", landing)
    db = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGFLOW_SOURCE", "files")
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(landing))
    monkeypatch.delenv("SEGFLOW_SOURCES_FILE", raising=False)
    result = dg.materialize(
        raw_assets,
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(db)),
            "segflow": SegflowSettingsResource(),
        },
        tags=RANGE,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return result, db


def _metadata(result: dg.ExecuteInProcessResult, table: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey(["raw", table]):
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of raw.{table}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vendor_fixture_loads_with_exact_counts(name: str, tmp_path: Path, monkeypatch):
    result, db = _run(tmp_path, name, monkeypatch)
    with duckdb.connect(str(db), read_only=True) as conn:
        for table in ("events", "crm_contacts", "billing_invoices"):
            want = EXPECTED[name].get(
                table, {"read": 0, "loaded": 0, "quarantined": {}, "users": 0}
            )
            meta = _metadata(result, table)
            assert meta["rows_read"] == want["read"], table
            assert meta["rows_loaded"] == want["loaded"], table
            assert meta["rows_read"] == meta["rows_loaded"] + meta["rows_quarantined"]
            assert meta["files_skipped"] == 0
            loaded = conn.execute(f"select count(*) from raw.{table}").fetchone()[0]
            assert loaded == want["loaded"], table
            reasons = dict(
                conn.execute(
                    "select reason_code, count(*) from raw.quarantine where table_name = ? "
                    "group by 1",
                    [table],
                ).fetchall()
            )
            assert reasons == want["quarantined"], table
            users = conn.execute(f"select count(distinct user_id) from raw.{table}").fetchone()[0]
            assert users == want["users"], table
            if "pages" in want:
                pages = conn.execute(
                    "select count(*) from raw.events where type = 'page'"
                ).fetchone()[0]
                assert pages == want["pages"]
            if "revenue" in want:
                revenue = conn.execute(
                    "select sum(amount) from raw.billing_invoices where status = 'paid'"
                ).fetchone()[0]
                assert revenue == pytest.approx(want["revenue"])
                statuses = dict(
                    conn.execute(
                        "select status, count(*) from raw.billing_invoices group by 1"
                    ).fetchall()
                )
                assert statuses == want["statuses"]
                currencies = {
                    c
                    for (c,) in conn.execute(
                        "select distinct currency from raw.billing_invoices"
                    ).fetchall()
                }
                assert currencies <= {"USD", "EUR"}
            if "identity" in want:
                assert "identity" in meta
                assert meta["identity_unmatched"] == want["identity"].get("unmatched", 0)


def test_crm_times_are_read_in_the_declared_zone_and_matched_by_email(tmp_path, monkeypatch):
    _, db = _run(tmp_path, "hubspot_contacts_csv", monkeypatch)
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "select user_id, email, updated_at, _partition_date::varchar "
            "from raw.crm_contacts order by updated_at"
        ).fetchall()
    # HubSpot local times (America/New_York, UTC-5 in early March) -> UTC; 20:05 local on
    # the 3rd is the 4th in UTC. Ben@Example.com matches the identify call of u_2.
    assert [(r[0], r[1], r[2].isoformat(), r[3]) for r in rows] == [
        ("u_1", "ana@example.com", "2025-03-03T14:30:00", "2025-03-03"),
        ("u_2", "ben@example.com", "2025-03-04T01:05:00", "2025-03-04"),
        ("1003", "cara@example.org", "2025-03-04T13:10:00", "2025-03-04"),
    ]
