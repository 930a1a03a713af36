"""Well-formed CSV files read by Arrow's multi-threaded reader (which DuckDB then scans in
parallel) give what the record-by-record Python reader gives: same rows, values, lines and
quarantine; a file Arrow cannot read with exact line numbers goes to the Python reader."""

from __future__ import annotations

import gzip
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.sources import read_tabular
from orchestration.sources.discover import FileInfo
from orchestration.sources.files import create_stage, drop_stage, stage_files, table_spec
from orchestration.sources.load import load_partitions

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


def _record_reads(monkeypatch, arrow: bool = True) -> list:
    """Whether each CSV file was read by Arrow (True) or record by record (False); `arrow`
    False sends every file to the record-by-record reader."""
    reads: list = []
    original = read_tabular._read_csv_fast

    def record(*args):
        table = original(*args) if arrow else None
        reads.append(table is not None)
        return table

    monkeypatch.setattr(read_tabular, "_read_csv_fast", record)
    return reads


def _same_as_python_readers(tmp_path: Path, data: bytes, monkeypatch) -> tuple[list, list]:
    """Load `data` as it is, then gzipped with Arrow switched off: the same outcome."""
    arrow = _load(tmp_path / "a", "c.csv", data)
    with monkeypatch.context() as patch:
        _record_reads(patch, arrow=False)
        python = _load(tmp_path / "b", "c.csv.gz", data)
    assert arrow[0] == python[0]
    assert arrow[1] == python[1]
    assert arrow[2].rows_read == python[2].rows_read
    return arrow[0], arrow[1]


@pytest.mark.parametrize("n", [3000, 40_000])  # one Arrow block; four (5 MB)
def test_arrow_read_equals_the_python_reader_on_a_well_formed_file(
    tmp_path: Path, monkeypatch, n: int
) -> None:
    data = (HEADER + "".join(_row(i) for i in range(n))).encode()
    rows, bad = _same_as_python_readers(tmp_path, data, monkeypatch)
    assert len(rows) == n and bad == []
    assert [r[-1] for r in rows] == list(range(2, n + 2))  # line numbers
    by_id = {r[0]: r for r in rows}
    assert by_id["u3"][3] == 'Acme 3, "Inc"' and by_id["u1"][3] == "Beta 1"
    assert by_id["u2"][3] is None and by_id["u1"][1] == "U1@Example.com"

    conn = duckdb.connect()
    create_stage(conn, "_s")
    info = FileInfo(tmp_path / "a" / "crm_contacts" / "dt=2025-03-03" / "c.csv", "c.csv", DAY)
    read = stage_files(conn, "_s", table_spec("crm_contacts"), [info])
    assert len(read.tables) == 1 and read.padded == {"company"}  # Arrow read it
    drop_stage(conn, "_s")


def test_a_file_name_with_glob_characters_is_read_as_itself(tmp_path: Path) -> None:
    data = (HEADER + "".join(_row(i) for i in range(5))).encode()
    decoy = tmp_path / "a" / "crm_contacts" / "dt=2025-03-03" / "c1.csv"
    decoy.parent.mkdir(parents=True)
    decoy.write_bytes(HEADER.encode() + _row(99).encode())  # what `c[1].csv` would glob to
    rows, bad, _ = _load(tmp_path / "a", "c[1].csv", data)
    assert len([r for r in rows if r[0] != "u99"]) == 5 and bad == []


def test_files_arrow_refuses_are_read_record_by_record(tmp_path: Path, monkeypatch) -> None:
    """A record of the wrong width and a byte that is not UTF-8 make Arrow's reader refuse the
    file: it is read record by record, with the same quarantine."""
    tries = _record_reads(monkeypatch)
    lines = [_row(i).encode() for i in range(50)]
    lines[10] = b"u10,short,row\r\n"
    lines[20] = _row(20).replace("Software", "Caf\xe9").encode("latin-1")
    rows, bad = _same_as_python_readers(tmp_path, HEADER.encode() + b"".join(lines), monkeypatch)
    assert len(rows) == 48
    assert [(ln, code) for ln, code, *_ in bad] == [(12, "malformed_csv"), (22, "bad_encoding")]
    assert tries == [False]  # Arrow refused the file


_BLANK = "\r\n"


@pytest.mark.parametrize(
    ("lines", "refused", "loaded"),
    [
        (lambda rows: rows, False, 8),
        (lambda rows: [*rows[:3], _BLANK, *rows[3:]], True, 8),  # a blank line
        (lambda rows: [*rows, _BLANK], True, 8),  # a blank line at the end
        (lambda rows: [_BLANK, *rows], True, 0),  # before the header: no header, no rows
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
    """A blank line or a quoted newline would put Arrow's records off their lines: Arrow's read
    is kept only when it read one record per line after the header; else Python reads it."""
    tries = _record_reads(monkeypatch)
    text = "".join(lines([HEADER, *(_row(i) for i in range(8))]))
    rows, bad = _same_as_python_readers(tmp_path, text.encode(), monkeypatch)
    assert len(rows) == loaded  # (the same as the Python reader: checked above)
    assert tries == ([False] if refused else [True])


def test_padding_and_line_counts_from_buffers_equal_the_arrow_kernels() -> None:
    """Which columns get trimmed and how many lines a file has come from the raw buffers (numpy
    over Arrow offsets, chunked newline counts): they must equal Arrow's own string tests and
    bytes.count on every shape, sliced and multi-byte values included."""
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    def kernels(arr) -> bool:
        return bool(
            pc.any(pc.starts_with(arr, " ")).as_py() or pc.any(pc.ends_with(arr, " ")).as_py()
        )

    rnd = random.Random(7)
    shapes = ["", " ", "a", " a", "a ", "ab", "a b", "é ", " é", "x y z"]
    for _ in range(2000):
        values = [rnd.choice(shapes) for _ in range(rnd.randrange(0, 7))]
        for kind in (pa.string(), pa.large_string()):
            arr = pa.array(values, kind)
            for part in (arr, arr.slice(1), arr.slice(0, max(len(arr) - 1, 0))):
                assert read_tabular._has_padding(part) == kernels(part), values
    for data in (b"", b"\n", b"a\nb", b"a\r\nb\r\n", b"\n" * (1 << 22) + b"x\n" + b"y" * 9):
        assert read_tabular.count_newlines(data) == data.count(b"\n")
