"""Compressed exports load exactly like plain ones (issue 21). Vendors that compress ship
compressed fixtures (Segment S3 `.gz`, Amplitude's zip of `.json.gz`, Mixpanel's gzipped
export, Segment warehouse `.csv.gz`); here every other vendor fixture is also loaded with each
plain file gzipped (`Invoices.csv` -> `Invoices.csv.gz`), and must give the exact expected
counts (tests/fixtures/vendors/expected.py) and the same raw rows as the plain files."""

from __future__ import annotations

import gzip
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.sources.load import RAW_TABLES, load_partitions
from orchestration.sources.mappings import load_config
from tests.fixtures.vendors.expected import EXPECTED

VENDORS = Path(__file__).parent / "fixtures" / "vendors"
NOW = datetime(2025, 3, 20)
ORDER = ("events", *(t for t in RAW_TABLES if t != "events"))  # CRM / billing match users
VENDOR_COMPRESSED = {  # files the vendor itself compresses, as the fixtures hold them
    "segment_s3": ".gz",
    "amplitude_export": ".zip",
    "mixpanel_export": ".gz",
    "segment_warehouse": ".gz",
}


def _gzip_plain_files(landing: Path) -> int:
    """Gzip every data file that is not compressed yet; returns how many."""
    done = 0
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        if path.name == "sources.yml" or path.suffix in (".gz", ".zip"):
            continue
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        path.unlink()
        done += 1
    return done


def _load(landing: Path) -> tuple[dict, dict]:
    """(counts per table, raw rows per table without lineage columns)."""
    config = load_config(landing)
    counts, rows = {}, {}
    with duckdb.connect() as conn:
        for table in ORDER:
            report = load_partitions(conn, table, None, landing, "files", 3, now=NOW, config=config)
            assert not report.blocking_skipped, report.blocking_skipped
            counts[table] = (report.rows_read, report.rows_loaded, report.quarantined_by_reason)
            rows[table] = conn.execute(
                f"select * exclude (_source_file, _loaded_at) from raw.{table} order by all"
            ).fetchall()
    return counts, rows


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gzipped_fixture_loads_the_exact_counts(name: str, tmp_path: Path) -> None:
    plain = VENDORS / name / "landing"
    variant = tmp_path / "landing"
    shutil.copytree(plain, variant)
    gzipped = _gzip_plain_files(variant)
    if name in VENDOR_COMPRESSED:
        suffix = VENDOR_COMPRESSED[name]
        assert any(p.suffix == suffix for p in plain.rglob("*")), f"{name}: not compressed"
    assert gzipped or name in ("segment_s3", "amplitude_export", "mixpanel_export")
    counts, rows = _load(variant)
    for table, (read, loaded, reasons) in counts.items():
        want = EXPECTED[name].get(table, {"read": 0, "loaded": 0, "quarantined": {}})
        assert (read, loaded, reasons) == (want["read"], want["loaded"], want["quarantined"]), (
            name,
            table,
        )
    assert rows == _load(plain)[1]  # the same rows, from the same lines


def test_a_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(VENDORS / "mixpanel_export" / "landing", landing)
    path = next(landing.rglob("*.json.gz"))
    path.write_bytes(path.read_bytes()[:-20])
    from orchestration.sources.check import check_sources

    result = check_sources(landing, now=NOW)
    assert not result.ok
    assert any("export-2025-03-03_2025-03-04.json.gz" in e and "gzip" in e for e in result.errors)
