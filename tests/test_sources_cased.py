"""Two shortcuts of the CSV reader give exactly what the plain way gave: a column a `case:` rule
lowers or uppers is cased by Arrow's ASCII kernels in an ASCII file (a non-ASCII file, or a
batch with one, is cased in SQL as before), and a plain CSV file is memory-mapped instead of
read into memory. Same raw rows, quarantine rows (payloads keep the text as written), reasons
and report counts, for an ASCII file, a non-ASCII one, both in one batch, a UTF-8 BOM file
and a gzip file named .csv."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.sources import files, load, read_tabular
from orchestration.sources.load import load_partitions
from orchestration.sources.mappings import load_config

NOW = datetime(2025, 3, 20)
SOURCES = """sources:
  crm_contacts:
    files: ['export/**']
    format: csv
    time_zone: America/New_York
    columns:
      user_id: ["Record ID"]
      email: {from: ["Email", "E-mail"], case: lower}
      signup_at: {from: ["Create Date"], format: ["iso", "%Y-%m-%d %H:%M"]}
      industry: {from: ["Industry"], case: lower}
      country: {from: ["Country"], case: upper}
      plan: {from: ["Stage"], case: lower, map: {customer: pro, lead: free}}
      updated_at: {from: ["Modified"], format: ["iso", "%Y-%m-%d %H:%M"]}
"""
HEADER = "Record ID,Email,Create Date,Industry,Country,Stage,Modified\n"
ASCII_ROWS = [
    "1,Ana@Example.COM,2025-03-01 10:00,Software,pt,Customer,2025-03-03 10:00",
    "2, Padded@X.com ,2025-03-01 10:00, FINANCE , Br ,  LEAD ,2025-03-03 11:00",
    "3,,2025-03-01 10:00,,,,2025-03-03 12:00",
    "4,MIXED@X.ORG,not a date,Health Care,US,Partner,2025-03-04 08:00",  # wrong_type
    ",NOID@X.COM,2025-03-01 10:00,Software,pt,customer,2025-03-04 09:00",  # null_key
    "6,late@x.com,2025-03-01 10:00,Retail,De,Opportunity,2031-01-01 00:00",  # future
]
OTHER_ROWS = [
    "7,JOSÉ@Exemplo.PT,2025-03-01 10:00,ÉNERGIE,pt,Customer,2025-03-03 10:00",
    "8,Zoë@X.com,bad,Ästhetik,fr,Lead,2025-03-05 10:00",  # wrong_type, payload as written
]


def _write(land: Path, case: str) -> None:
    export = land / "export"
    export.mkdir(parents=True)
    (land / "sources.yml").write_text(SOURCES)
    ascii_text = HEADER + "\n".join(ASCII_ROWS) + "\n"
    other_text = HEADER + "\n".join(OTHER_ROWS) + "\n"
    if case in ("ascii", "both"):
        (export / "a.csv").write_text(ascii_text)
    if case in ("non_ascii", "both"):
        (export / "b.csv").write_text(other_text, encoding="utf-8")
    if case == "bom":
        (export / "a.csv").write_bytes(b"\xef\xbb\xbf" + ascii_text.encode())
    if case == "gzip_named_csv":
        (export / "a.csv").write_bytes(gzip.compress(ascii_text.encode()))


def _outcome(land: Path) -> tuple:
    conn = duckdb.connect()
    report = load_partitions(
        conn, "crm_contacts", None, land, "files", 3, now=NOW, config=load_config(land)
    )
    rows = conn.execute(
        "select * exclude (_loaded_at) from raw.crm_contacts order by _source_file, _source_line"
    ).fetchall()
    bad = conn.execute(
        "select * exclude (quarantined_at) from raw.quarantine order by source_file, source_line"
    ).fetchall()
    counts = (report.rows_loaded, report.rows_quarantined, sorted(report.file_counts.items()))
    return rows, bad, counts


def _spy(monkeypatch) -> tuple[list, list]:
    """The cased copies each validation query read, and whether each file was mapped."""
    copies: list = []
    mapped: list = []
    typed, mapper = load.typed_sql, files._mapped

    def typed_sql(*args, **kwargs):
        if len(args) >= 8:
            copies.append(set(args[7]))
        return typed(*args, **kwargs)

    def record_map(info):
        result = mapper(info)
        mapped.append(result is not None)
        return result

    monkeypatch.setattr(load, "typed_sql", typed_sql)
    monkeypatch.setattr(files, "_mapped", record_map)
    return copies, mapped


EXPECTED = {  # (cased copies read, files mapped) on the fast path
    "ascii": ({"l_email", "l_industry", "l_stage", "u_country"}, [True]),
    "non_ascii": (set(), [True]),
    "both": (set(), [True, True]),
    "bom": ({"l_email", "l_industry", "l_stage", "u_country"}, [True]),
    "gzip_named_csv": ({"l_email", "l_industry", "l_stage", "u_country"}, [False]),
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_cased_copies_and_mapped_files_load_what_sql_casing_of_a_read_copy_loads(
    tmp_path: Path, monkeypatch, case: str
) -> None:
    _write(tmp_path / "fast", case)
    _write(tmp_path / "plain", case)
    with monkeypatch.context() as patch:
        copies, mapped = _spy(patch)
        fast = _outcome(tmp_path / "fast")
    assert (copies[-1], mapped) == EXPECTED[case]
    with monkeypatch.context() as patch:  # the plain way: SQL casing over a read copy
        patch.setattr(read_tabular, "cased_headers", lambda spec, source: {})
        patch.setattr(files, "_mapped", lambda info: None)
        plain = _outcome(tmp_path / "plain")
    assert fast == plain
    rows, bad, _ = fast
    assert rows and bad  # the cases load rows and quarantine some
    emails = {r[1] for r in rows}
    if case in ("ascii", "both", "bom", "gzip_named_csv"):
        assert {"ana@example.com", "padded@x.com", None} <= emails
        assert any("MIXED@X.ORG" in (p or "") for *_, p, _code, _detail, _r in bad)
    if case in ("non_ascii", "both"):
        assert "josé@exemplo.pt" in emails
