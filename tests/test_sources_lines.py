"""JSON lines are split on newlines in 4 MiB chunks: line numbers stay exact across chunk
boundaries (a newline on the boundary, a line spanning it)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np

from orchestration.sources.load import load_partitions
from orchestration.sources.read_json import _CHUNK, _line_ends


def test_line_ends_equal_a_whole_file_scan() -> None:
    for data in (
        b"",
        b"\n",
        b"{}",
        b"a" * (_CHUNK - 1) + b"\n" + b"b\n",  # a newline as the chunk's last byte
        b"a" * _CHUNK + b"\n" + b"b" * (2 * _CHUNK) + b"\nc",  # lines spanning chunks
    ):
        expected = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1
        assert _line_ends(data).tolist() == expected.tolist()


def test_big_file_keeps_line_numbers(tmp_path: Path) -> None:
    """A 9 MiB day: every row's source_line is its physical line."""
    day = tmp_path / "events" / "dt=2026-12-01"
    day.mkdir(parents=True)
    pad = "x" * 900
    lines = [
        f'{{"message_id": "m{i}", "type": "identify", "user_id": "u{i}", '
        f'"timestamp": "2026-12-01T10:00:00Z", "properties": {{"pad": "{pad}"}}}}'
        for i in range(10_000)
    ]
    (day / "e.jsonl").write_text("\n".join(lines) + "\n")
    assert (day / "e.jsonl").stat().st_size > 2 * _CHUNK
    conn = duckdb.connect()
    report = load_partitions(
        conn, "events", [date(2026, 12, 1)], tmp_path, "files", 3, now=datetime(2026, 12, 2)
    )
    assert report.rows_loaded == 10_000
    wrong = conn.execute(
        "select count(*) from raw.events where message_id <> 'm' || (_source_line - 1)"
    ).fetchone()[0]
    assert wrong == 0
