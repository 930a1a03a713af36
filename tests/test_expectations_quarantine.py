"""Quarantine reconciliation: counts per partition and reason; the share check blocks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from expectations import QualityConfig, check_quarantine, quarantine_summary

D1, D2 = date(2025, 5, 1), date(2025, 5, 2)


@pytest.fixture()
def conn(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        connection.execute("create schema raw")
        connection.execute("create table raw.events (message_id varchar, _partition_date date)")
        connection.execute("""create table raw.quarantine (table_name varchar,
            partition_date date, source_file varchar, source_line bigint, payload varchar,
            reason_code varchar, reason_detail varchar, quarantined_at timestamp,
            replayed_at timestamp)""")
        connection.execute(
            f"insert into raw.events select 'm' || i, date '{D1}' from range(97) t(i)"
        )
        connection.execute(
            f"insert into raw.events select 'n' || i, date '{D2}' from range(80) t(i)"
        )
        rows = (
            [("events", D1, "malformed_json", None)] * 2
            + [("events", D1, "null_key", None)]
            + [("events", D2, "unknown_event", None)] * 20
            + [("events", D2, "unknown_event", "2025-05-03")]
            + [
                ("billing_invoices", D2, "negative_amount", None),
                ("events", None, "wrong_type", None),
            ]
        )
        connection.executemany(
            "insert into raw.quarantine values (?, ?, 'f.jsonl', 1, '{}', ?, 'd', now(), ?)", rows
        )
        yield connection


def test_summary_counts_by_partition_and_reason(conn):
    summary = quarantine_summary(conn, "events", [D1, D2])
    first, second = summary.partitions
    assert (first.rows_loaded, first.rows_quarantined, first.rows_read) == (97, 3, 100)
    assert first.by_reason == {"malformed_json": 2, "null_key": 1}
    assert (second.rows_read, second.by_reason) == (100, {"unknown_event": 20})  # replayed excluded
    assert summary.by_reason == {"malformed_json": 2, "null_key": 1, "unknown_event": 20}
    assert list(summary.frame()["rows_read"]) == [100, 100]
    assert summary.rows_unassigned == 1  # an undated row with no usable date


def test_share_check_blocks_above_threshold(conn):
    result = check_quarantine(
        conn, "raw.events", [D1, D2], QualityConfig(max_quarantine_share=0.05)
    )
    (share,) = result.outcomes
    assert share.blocking and share.unexpected_count == 1
    assert "2025-05-02: 20/100 (20.0%)" in share.message and "unknown_event" in share.message
    relaxed = check_quarantine(conn, "events", [D1, D2], QualityConfig(max_quarantine_share=0.25))
    assert relaxed.passed
    # 20 quarantined rows are needed before the share is judged
    floor = check_quarantine(conn, "events", [D1, D2], QualityConfig(quarantine_min_rows=21))
    assert floor.passed


def test_reconciliation_against_loader_counts(conn):
    ok = check_quarantine(conn, "events", [D1, D2], rows_read={D1: 100, D2: 100})
    assert ok.outcome("events.quarantine.reconciles").passed
    off = check_quarantine(conn, "events", [D1, D2], rows_read={D1: 101, "2025-05-02": 100})
    broken = off.outcome("events.quarantine.reconciles")
    assert broken.blocking and "loader read 101" in broken.message


def test_missing_tables_count_zero(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as conn:
        summary = quarantine_summary(conn, "events", [D1])
        assert summary.rows_read == 0
