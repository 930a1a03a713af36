"""Well-formed CSV files on disk read by DuckDB's own CSV reader inside the validation query
(no copy through Python or Arrow): a SELECT giving the direct stage's columns (`d_<snake
name>` as text plus the stage columns) that the typed query reads.

Line numbers are the row number + 1, so a file counts only when every record is one
physical line: no blank lines and no newline inside quotes. Each record takes at least one
line and DuckDB skips blank lines, so that holds exactly when the query reads as many records
as the file has lines after the header (`expected_records`; the loader compares the count the
write returns). A record of the wrong width or a byte that is not UTF-8 makes DuckDB's strict
reader fail the query. Either way the loader reads the file again the way it reads any other
CSV (`DirectCsvFailed`)."""

from __future__ import annotations

import numpy as np

from orchestration.sources.discover import FileInfo


class DirectCsvFailed(Exception):
    """DuckDB's reader refused a file read directly: read the group again without it."""


def direct_csv_select(
    info: FileInfo,
    raw: bytes,
    header: list[str],
    delimiter: str,
    missing_detail: str | None,
) -> tuple[str, int, bool] | None:
    """(the SELECT reading `info` as a direct stage, the number of records it must read (one
    per line after the header), whether a value starts or ends with a space: only then does
    the typed query trim), or None when the file must go through Python (old Mac line ends, no
    record, a multi-byte delimiter, glob characters in the path). `raw` must be the bytes of
    the file on disk, as they are there."""
    if len(delimiter.encode()) != 1 or not raw or not header:
        return None  # (an empty header: a blank first line)
    if any(ch in str(info.path) for ch in "*?[]{}"):
        return None  # DuckDB would read the path as a glob pattern
    records = expected_records(raw)
    if records is None or records == 0:
        return None
    padded = has_padded_value(raw, delimiter)
    columns = ", ".join(f"{_lit('d_' + h)}: 'VARCHAR'" for h in header)
    reason = _lit("missing_required_column") if missing_detail else "null"
    detail = _lit(missing_detail) if missing_detail else "null"
    day = f"date '{info.partition_date.isoformat()}'" if info.partition_date else "null::date"
    sql = f"""select {_lit(info.relative)}::varchar as source_file,
        (row_number() over () + 1)::bigint as source_line, {day} as partition_date,
        {reason}::varchar as pre_reason, {detail}::varchar as pre_detail,
        null::bigint as quarantine_rowid, *
      from read_csv({_lit(str(info.path))}, header = true, auto_detect = false,
        delim = {_lit(delimiter)}, quote = '"', escape = '"', columns = {{{columns}}},
        strict_mode = true, null_padding = false, parallel = true)"""
    return sql, records, padded


def expected_records(raw: bytes) -> int | None:
    """How many records follow the header when each is one physical line (None: lone
    carriage-return line ends, which DuckDB reads as line ends but the count would not)."""
    if b"\r" in raw[:4096] and b"\r\n" not in raw[:4096]:
        return None
    return raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1) - 1


def has_padded_value(raw: bytes, delimiter: str, quotes: np.ndarray | None = None) -> bool:
    """Whether a field (quoted or not, header included) starts or ends with a space: a space
    next to a delimiter or line end that is outside quotes (an even number of quotes before
    it), or just inside a quote at such a boundary. `quotes`: the quote positions, if known."""
    data = np.frombuffer(raw, np.uint8)
    spaces = np.flatnonzero(data == 32)
    if not len(spaces):
        return False
    last = len(data) - 1
    if spaces[0] == 0 or spaces[-1] == last:
        return True
    delim = ord(delimiter)
    prev, nxt = data[spaces - 1], data[spaces + 1]
    edge_before = (prev == delim) | (prev == 10)
    edge_after = (nxt == delim) | (nxt == 10) | (nxt == 13)
    quoted_before, quoted_after = prev == 34, nxt == 34
    if quoted_before.any():
        two = data[np.maximum(spaces[quoted_before] - 2, 0)]
        quoted_before[quoted_before] = (two == delim) | (two == 10) | (spaces[quoted_before] < 2)
    if quoted_after.any():
        two = data[np.minimum(spaces[quoted_after] + 2, last)]
        quoted_after[quoted_after] = (
            (two == delim) | (two == 10) | (two == 13) | (spaces[quoted_after] + 2 > last)
        )
    where = np.concatenate(
        [
            spaces[edge_before] - 1,
            spaces[edge_after] + 1,
            spaces[quoted_before] - 2,
            spaces[quoted_after] + 2,
        ]
    )
    if not len(where):
        return False
    if quotes is None:
        quotes = np.flatnonzero(data == 34)
    return not (np.searchsorted(quotes, where) & 1).all()  # some boundary outside quotes


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
