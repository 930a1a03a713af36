"""Segment's warehouse schema (issue 21): one table per track event besides `tracks`,
`identifies`, `pages`, `screens` and `users`. The `segment_warehouse` preset reads each call
once (from `tracks`) and claims every other table with its reason; the Order Completed table
holds revenue, read by `segment_warehouse_orders` as paid invoices, and blocks the run while
nothing reads it. Fixture: tests/fixtures/vendors/segment_warehouse (written by build.py from
Segment's documented warehouse schema and ecommerce spec)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.sources.check import check_sources, render
from orchestration.sources.load import load_partitions
from orchestration.sources.mappings import MappingError, load_config, parse_config

FIXTURE = Path(__file__).parent / "fixtures" / "vendors" / "segment_warehouse" / "landing"
NOW = datetime(2025, 3, 20)


def _load(landing: Path, table: str, conn: duckdb.DuckDBPyConnection):
    config = load_config(landing)
    return load_partitions(conn, table, None, landing, "files", 3, now=NOW, config=config)


def test_events_once_from_tracks_and_order_revenue_as_paid_invoices() -> None:
    with duckdb.connect() as conn:
        events = _load(FIXTURE, "events", conn)
        invoices = _load(FIXTURE, "billing_invoices", conn)
        # tracks 5 + identifies 2 + pages 1 + screens 1; the per-event rows are not read again
        assert (events.rows_read, events.rows_loaded) == (9, 7)
        assert events.quarantined_by_reason == {"unknown_event": 2}  # Order Completed
        assert events.duplicate_keys == 0
        unread = {s.relative: s for s in events.skipped if "unread" in s.reason}
        assert set(unread) == {"segment-warehouse/project_created.csv"}
        assert unread["segment-warehouse/project_created.csv"].ignored
        assert (
            "per-event table repeats the track calls"
            in unread["segment-warehouse/project_created.csv"].reason
        )
        assert (invoices.rows_read, invoices.rows_loaded) == (2, 2)
        rows = conn.execute(
            "select invoice_id, user_id, amount, currency, status, paid_at::varchar, "
            "_partition_date::varchar from raw.billing_invoices order by invoice_id"
        ).fetchall()
    assert rows == [
        ("ord_50314b8e", "u_1", 25.0, "USD", "paid", "2025-03-03 12:00:00", "2025-03-03"),
        ("ord_7a9c2d10", "42", 19.99, "EUR", "paid", "2025-03-04 10:00:00", "2025-03-04"),
    ]


def test_dry_run_passes_with_the_orders_line() -> None:
    result = check_sources(FIXTURE, now=NOW)
    assert result.ok, render(result)
    assert result.reports["billing_invoices"].rows_loaded == 2


def test_order_table_nobody_reads_blocks_the_run(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    (landing / "sources.yml").write_text(
        "sources:\n  events: {preset: segment_warehouse}\n"
        "  crm_contacts: {preset: segment_warehouse_users}\n"
    )
    result = check_sources(landing, now=NOW)
    assert not result.ok
    blocking = " ".join(result.verdicts["events"].blocking)
    assert "segment-warehouse/order_completed.csv.gz" in blocking
    assert "billing_invoices: {preset: segment_warehouse_orders}" in blocking
    assert "BLOCKED" in render(result)


def test_a_reading_source_beats_an_unread_claim_of_the_same_file(tmp_path: Path) -> None:
    """Ties in specificity go to the source that reads the file, whatever the order."""
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    (landing / "sources.yml").write_text(
        "sources:\n  events: {preset: segment_warehouse}\n"
        "  crm_contacts: {preset: segment_warehouse_users}\n"
        "  orders:\n    preset: segment_warehouse_orders\n"
        "    files: ['segment-warehouse/**/*order_completed*']\n"
    )
    with duckdb.connect() as conn:
        assert _load(landing, "billing_invoices", conn).rows_loaded == 2


@pytest.mark.parametrize(
    "unread",
    [["a/**"], {"a/**": 3}, {"a/**": {"reason": "x", "block": "yes"}}, {"a/**": {"why": "x"}}],
)
def test_unread_must_name_a_reason(unread) -> None:
    with pytest.raises(MappingError, match="unread"):
        parse_config({"sources": {"events": {"files": ["a/**"], "unread": unread}}})
