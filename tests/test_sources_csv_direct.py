"""CSV files on disk read by DuckDB inside the validation query give what the Python readers
give (the same file gzipped goes through them): same rows, values, lines and quarantine."""

from __future__ import annotations

import gzip
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.sources.discover import FileInfo
from orchestration.sources.files import create_stage, drop_stage, stage_files, table_spec
from orchestration.sources.load import load_partitions
from orchestration.sources.read_csv_direct import expected_records

DAY = date(2025, 3, 3)
NOW = datetime(2025, 3, 10, 12, 0)
HEADER = (
    "user_id,email,signup_at,company,industry,company_size,country,role,plan,"
    "acquisition_channel,updated_at\r\n"
)


def _row(i: int) -> str:
    company = f'"Acme {i}, ""Inc"""' if i % 3 == 0 else f" Beta {i} " if i % 3 == 1 else ""
    return (
        f"u{i},U{i}@Example.com,2025-03-01T10:00:00Z,{company},Software,{i % 900},PT,eng,"
        f"free,direct,2025-03-03 {i % 24:02d}:{i % 60:02d}\r\n"
    )


def _load(root: Path, name: str, data: bytes) -> tuple[list, list, object]:
    path = root / "crm_contacts" / "dt=2025-03-03" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    (root / "sources.yml").write_text(
        "sources:\n  crm_contacts:\n    files: ['crm_contacts/**']\n    time_zone: Europe/Lisbon\n"
    )
    from orchestration.sources.mappings import load_config

    conn = duckdb.connect()
    report = load_partitions(
        conn, "crm_contacts", [DAY], root, "files", 3, now=NOW, config=load_config(root)
    )
    rows = conn.execute(
        "select * exclude (_loaded_at, _source_file) from raw.crm_contacts order by _source_line"
    ).fetchall()
    bad = conn.execute(
        "select source_line, reason_code, reason_detail, payload from raw.quarantine "
        "order by source_line"
    ).fetchall()
    return rows, [(ln, code, detail.replace(".gz", ""), p) for ln, code, detail, p in bad], report


def _same_as_python_readers(tmp_path: Path, data: bytes) -> tuple[list, list]:
    direct = _load(tmp_path / "a", "c.csv", data)
    python = _load(tmp_path / "b", "c.csv.gz", data)
    assert direct[0] == python[0]
    assert direct[1] == python[1]
    assert direct[2].rows_read == python[2].rows_read
    return direct[0], direct[1]


def test_direct_read_equals_the_python_readers_on_a_well_formed_file(tmp_path: Path) -> None:
    data = (HEADER + "".join(_row(i) for i in range(3000))).encode()
    rows, bad = _same_as_python_readers(tmp_path, data)
    assert len(rows) == 3000 and bad == []
    assert [r[-1] for r in rows] == list(range(2, 3002))  # line numbers
    by_id = {r[0]: r for r in rows}
    assert by_id["u3"][3] == 'Acme 3, "Inc"' and by_id["u1"][3] == "Beta 1"
    assert by_id["u2"][3] is None and by_id["u1"][1] == "U1@Example.com"

    conn = duckdb.connect()
    create_stage(conn, "_s")
    info = FileInfo(tmp_path / "a" / "crm_contacts" / "dt=2025-03-03" / "c.csv", "c.csv", DAY)
    read = stage_files(conn, "_s", table_spec("crm_contacts"), [info])
    assert len(read.direct) == 1 and not read.tables  # DuckDB read it, not Arrow
    drop_stage(conn, "_s")


def test_a_file_name_with_glob_characters_is_read_as_itself(tmp_path: Path) -> None:
    data = (HEADER + "".join(_row(i) for i in range(5))).encode()
    decoy = tmp_path / "a" / "crm_contacts" / "dt=2025-03-03" / "c1.csv"
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(HEADER.encode() + _row(99).encode())  # what `c[1].csv` would glob to
    rows, bad, _ = _load(tmp_path / "a", "c[1].csv", data)
    assert len([r for r in rows if r[0] != "u99"]) == 5 and bad == []


def _record_tries(monkeypatch) -> list:
    """The path each staging attempt took (the last argument of `load._stage_and_write`)."""
    from orchestration.sources import load

    tries: list = []
    original = load._stage_and_write

    def record(*args):
        tries.append(args[-1])
        return original(*args)

    monkeypatch.setattr(load, "_stage_and_write", record)
    return tries


def test_files_duckdb_refuses_are_read_again_in_python(tmp_path: Path, monkeypatch) -> None:
    """A record of the wrong width and a byte that is not UTF-8 make DuckDB's strict reader
    fail: the file is read again line by line, with the same quarantine."""
    tries = _record_tries(monkeypatch)
    lines = [_row(i).encode() for i in range(50)]
    lines[10] = b"u10,short,row\r\n"
    lines[20] = _row(20).replace("Software", "Caf\xe9").encode("latin-1")
    rows, bad = _same_as_python_readers(tmp_path, HEADER.encode() + b"".join(lines))
    assert len(rows) == 48
    assert [(ln, code) for ln, code, *_ in bad] == [(12, "malformed_csv"), (22, "bad_encoding")]
    assert tries == [True, False, True]  # direct refused, then Python; the gzipped copy


_BLANK = "\r\n"


@pytest.mark.parametrize(
    ("lines", "refused", "loaded"),
    [
        (lambda rows: rows, False, 8),
        (lambda rows: [*rows[:3], _BLANK, *rows[3:]], True, 8),  # a blank line
        (lambda rows: [*rows, _BLANK], True, 8),  # a blank line at the end
        (lambda rows: [_BLANK, *rows], False, 0),  # before the header: never read directly
        (
            lambda rows: [*rows[:2], rows[2].replace("Software", '"Soft\nware"'), *rows[3:]],
            True,
            8,
        ),
        (lambda rows: [*rows[:-1], rows[-1].rstrip()], False, 8),  # no line end after the last
    ],
)
def test_line_numbers_stay_right_or_the_file_is_read_in_python(
    tmp_path: Path, monkeypatch, lines, refused: bool, loaded: int
) -> None:
    """DuckDB skips blank lines and reads a quoted newline as one record: the direct read is
    kept only when it read one record per line after the header; else Python reads it."""
    tries = _record_tries(monkeypatch)
    text = "".join(lines([HEADER, *(_row(i) for i in range(8))]))
    rows, bad = _same_as_python_readers(tmp_path, text.encode())
    assert len(rows) == loaded  # (the same as the Python readers: checked above)
    # direct, then (when DuckDB's read was refused) Python; then the gzipped copy
    assert tries == ([True, False, True] if refused else [True, True])


@pytest.mark.parametrize(
    ("text", "records"),
    [
        (b"a,b\n1,2\n3,4\n", 2),
        (b"a,b\n1,2\n3,4", 2),
        (b"a,b\r\n1,2\r\n", 1),
        (b"a,b\r1,2\r", None),  # old Mac line ends
    ],
)
def test_expected_records(text: bytes, records: int | None) -> None:
    assert expected_records(text) == records
