"""Tabular readers: CSV (Arrow's multi-threaded reader for well-formed UTF-8 files, a
line-by-line reader that quarantines malformed records and drops report footers otherwise)
and parquet (read by DuckDB). Headers are matched in snake_case; colliding names are an error."""

from __future__ import annotations

import csv
import io
import json
import mmap
import tempfile

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from orchestration.sources.cased import add_cased, cased_headers
from orchestration.sources.discover import FileInfo
from orchestration.sources.stage import (
    ROW_GROUP_ROWS,
    STAGE_COLS,
    STAGE_COLUMNS,
    ReadResult,
    extra_keys,
    insert_frame,
    is_ascii,
    is_utf8,
    missing_detail,
    missing_required,
    row_group_chunks,
)
from orchestration.sources.tables import SourceError, TableSpec, to_snake


def check_header(info: FileInfo, header: list[str]) -> list[str]:
    """snake_case names of a CSV/parquet header; duplicated or colliding names (`User ID` and
    `user_id`) are an error naming the file and the columns, never a silent overwrite."""
    snake = [to_snake(h) for h in header]
    groups: dict[str, list[str]] = {}
    for original, name in zip(header, snake, strict=True):
        groups.setdefault(name, []).append(original)
    clashes = {k: v for k, v in groups.items() if len(v) > 1}
    if clashes:
        listed = "; ".join(
            f"{', '.join(repr(c) for c in cols)} all read as {name!r}"
            for name, cols in clashes.items()
        )
        raise SourceError(
            f"{info.relative}: duplicate or colliding column names in the header: "
            f"{listed}; rename or drop one of them",
            file=info.relative,
            line=1,
            column=next(iter(clashes)),
        )
    return snake


def stage_csv(
    conn,
    stage: str,
    spec: TableSpec,
    info: FileInfo,
    raw: bytes,
    needed: dict[str, tuple[str, ...]],
    source=None,
    result: ReadResult | None = None,
) -> list[str]:
    """Stage one CSV file: Arrow's multi-threaded reader for well-formed UTF-8 files (a direct
    stage table in `result.tables`, which DuckDB then scans in parallel), else record by record
    with malformed records, bad bytes and report footers quarantined or counted. Returns the
    header names outside the contract."""
    csv.field_size_limit(1 << 30)
    delimiter = source.csv_delimiter if source is not None else ","
    header = _read_header(info, raw, delimiter)
    if header is None:
        return []
    missing = missing_required(needed, header)
    missing_note = missing_detail(info, spec, missing, header, needed) if missing else None
    cased = cased_headers(spec, source)
    table = _read_csv_fast(info, raw, header, delimiter, missing_note, cased)
    if table is not None:
        if result is not None:
            result.tables.append(table)
            result.padded |= _padded(table, header)
        return extra_keys(spec, header)
    records = _csv_records(info, bytes(raw), delimiter)  # a mapped file: copied here only
    if source is not None and source.csv_footer == "auto":
        footer = _footer_start(records, len(header))
        if footer < len(records):
            if result is not None:
                result.footer_lines[info.relative] = len(records) - footer
            records = records[:footer]
    rows = [
        row
        for start, fields, error in records
        if (row := _record_row(info, header, delimiter, start, fields, error, missing_note))
    ]
    insert_frame(conn, stage, pd.DataFrame(rows, columns=list(STAGE_COLUMNS)))
    return extra_keys(spec, header)


def _read_header(info: FileInfo, raw: bytes, delimiter: str) -> list[str] | None:
    """The header's snake_case names, read from the first 64 KiB (None: an empty file)."""
    head = raw[:65536]
    if len(head) < len(raw):  # the header is on the first line(s)
        head = head[: head.rindex(b"\n") + 1] if b"\n" in head else bytes(raw)
    text = head.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise SourceError(
            f"{info.relative}: line 1: cannot parse the CSV header ({exc})",
            file=info.relative,
            line=1,
        ) from exc
    return check_header(info, header)


Record = tuple[int, list[str] | None, str | None]  # (start line, fields, parse error)


def _csv_records(info: FileInfo, raw: bytes, delimiter: str) -> list[Record]:
    """Every record after the header with the physical line it starts on; a record the csv
    module cannot parse keeps its line and the error instead of fields."""
    text = raw.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next(reader)  # the header, read by _read_header
    records: list[Record] = []
    line = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append((line, None, f"{info.relative}: line {line}: {exc}"))
            line = reader.line_num + 1
            continue
        records.append((line, fields, None))
        line = reader.line_num + 1
    return records


def _record_row(
    info: FileInfo,
    header: list[str],
    delimiter: str,
    start: int,
    fields: list[str] | None,
    error: str | None,
    missing_note: str | None,
) -> tuple | None:
    """The stage row of one record (None for a blank record): quarantined as malformed, bad
    encoding or wrong width, else its fields as a JSON object."""
    where = (info.relative, start, info.partition_date)
    if fields is None:
        return (*where, None, "malformed_csv", error)
    if not any(f.strip() for f in fields):
        return None
    record_text = delimiter.join(fields)
    if _has_bad_bytes(record_text):
        return (
            *where,
            _clean(record_text),
            "bad_encoding",
            f"{info.relative}: line {start}: bytes that are not valid UTF-8 (expected UTF-8 text)",
        )
    if len(fields) != len(header):
        return (
            *where,
            record_text,
            "malformed_csv",
            f"{info.relative}: line {start}: expected {len(header)} fields "
            f"({', '.join(header)}), found {len(fields)}",
        )
    payload = json.dumps(
        {h: (v if v.strip() != "" else None) for h, v in zip(header, fields, strict=True)},
        ensure_ascii=False,
    )
    if missing_note:
        return (*where, payload, "missing_required_column", missing_note)
    return (*where, payload, None, None)


def _read_csv_fast(
    info: FileInfo,
    raw: bytes | mmap.mmap,
    header: list[str],
    delimiter: str,
    missing_detail: str | None,
    cased: dict[str, set[str]] | None = None,
) -> pa.Table | None:
    """Well-formed CSV (UTF-8, one record per line, each as wide as the header, no blank
    lines) parsed by Arrow's multi-threaded reader into a stage table (`d_<snake name>` text
    columns, and an ASCII file's `cased` copies `l_/u_<name>`); None for anything else."""
    if b"\r" in raw[:4096] and b"\r\n" not in raw[:4096]:
        return None  # old Mac line ends: the slow path counts lines right
    data = memoryview(raw)[3:] if raw[:3] == b"\xef\xbb\xbf" else raw
    ascii_text = is_ascii(data)
    if not ascii_text and not is_utf8(data):
        return None
    names = [f"d_{h}" for h in header]
    lines = count_newlines(data) + (0 if data[-1:] == b"\n" else 1)
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),  # bytes or a mapped file, read in place
            read_options=pa_csv.ReadOptions(
                column_names=names, skip_rows=1, block_size=_block_size(len(data), lines)
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, newlines_in_values=False, ignore_empty_lines=True
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=False,  # the whole file is valid UTF-8 (checked above)
            ),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    table = row_group_chunks(table)
    n = table.num_rows
    if lines != n + 1 or n == 0:
        return None  # blank lines or quoted newlines: line numbers need the slow path
    zeros = pa.array(np.zeros(n, np.int32))

    def const(value: str | None) -> pa.Array:  # one value n times, without n Python objects
        if value is None:
            return pa.nulls(n, pa.string())
        return pa.DictionaryArray.from_arrays(zeros, pa.array([value]))

    day = pa.repeat(pa.scalar(info.partition_date, pa.date32()), n)
    extra = {
        "source_file": const(info.relative),
        "source_line": pa.array(np.arange(2, n + 2), pa.int64()),
        "partition_date": day,
        "pre_reason": const("missing_required_column" if missing_detail else None),
        "pre_detail": const(missing_detail),
        "quarantine_rowid": pa.nulls(n, pa.int64()),
    }
    for name, column in extra.items():
        table = table.append_column(name, column)
    if ascii_text:
        table = add_cased(table, header, cased or {})
    return table


_ARROW_BLOCK = 1 << 20  # Arrow's default CSV block (it parses blocks in parallel)


def _block_size(size: int, lines: int) -> int:
    """Arrow's CSV block for a file of `size` bytes and `lines` lines: a large file is read in
    blocks of a little more than one DuckDB row group each, so its chunks go to the INSERT as
    they are (no copy to regroup them, see `row_group_chunks`); a smaller one in four blocks,
    two per core (a block has a fixed cost: 28 of 1 MiB took a fifth longer), regrouped once."""
    if lines < 4 * ROW_GROUP_ROWS:
        return max(_ARROW_BLOCK, size // 4 + 1)
    return max(_ARROW_BLOCK, int(size / lines * ROW_GROUP_ROWS * 1.1))


_COUNT_CHUNK = 1 << 22


def count_newlines(data: bytes) -> int:
    """The number of newline bytes in `data`, compared by numpy in 4 MiB chunks into one reused mask
    (twice as fast as bytes.count; one mask the size of the file cost more in page faults)."""
    view = np.frombuffer(data, np.uint8)
    mask = np.empty(min(len(view), _COUNT_CHUNK), bool)
    total = 0
    for start in range(0, len(view), _COUNT_CHUNK):
        chunk = view[start : start + _COUNT_CHUNK]
        out = mask[: len(chunk)]
        np.equal(chunk, 10, out=out)
        total += int(np.count_nonzero(out))
    return total


def _padded(table: pa.Table, header: list[str]) -> set[str]:
    """Header names with a value that starts or ends with a space: the only columns the
    validation query trims (cheaper than trimming every value). Read from the Arrow buffers:
    the first and last byte of each non-empty value, one numpy gather per chunk."""
    return {h for h in header if any(_has_padding(c) for c in table[f"d_{h}"].chunks)}


def _has_padding(chunk: pa.Array) -> bool:
    """Whether a value of the string array `chunk` starts or ends with a space."""
    if chunk.null_count:  # not what the reader makes: the general test
        return bool(
            pc.any(pc.starts_with(chunk, " ")).as_py() or pc.any(pc.ends_with(chunk, " ")).as_py()
        )
    _, offsets_buf, data_buf = chunk.buffers()
    if data_buf is None or len(chunk) == 0:
        return False
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    # a slice (row_group_chunks) shares its parent's buffers from `offset` on
    offsets = np.frombuffer(offsets_buf, width, chunk.offset + len(chunk) + 1)[chunk.offset :]
    data = np.frombuffer(data_buf, np.uint8)
    if not len(data) or not (data[offsets[0] : offsets[-1]] == 32).any():
        return False  # no space at all (ids, emails, codes): one scan, no gather
    # every value's first and last byte (an empty value's are its neighbours': masked out)
    first = data.take(offsets[:-1], mode="clip") == 32
    last = data.take(offsets[1:] - 1, mode="clip") == 32
    return bool(((first | last) & (offsets[1:] > offsets[:-1])).any())


def _footer_start(records: list, width: int) -> int:
    """Index where a report export's footer begins: after the last blank record, every record
    has at most one non-empty field (report name, copyright, "Generated By ..."). Returns
    len(records) when there is no such footer."""
    end = len(records)
    i = end
    while i > 0:
        fields = records[i - 1][1]
        if fields is None or len(fields) >= width and width > 1:
            break
        if sum(1 for f in fields if f.strip()) > 1:
            break
        i -= 1
    # the footer must start with a blank record (the separator line)
    while i < end:
        fields = records[i][1]
        if fields is not None and not any(f.strip() for f in fields):
            return i
        i += 1
    return end


def _has_bad_bytes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _clean(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def stage_parquet(
    conn,
    stage: str,
    spec: TableSpec,
    info: FileInfo,
    data: bytes | None,
    needed: dict[str, tuple[str, ...]],
) -> list[str]:
    if data is None:
        return _stage_parquet_path(conn, stage, spec, info, str(info.path), needed)
    with tempfile.NamedTemporaryFile(suffix=".parquet") as handle:  # compressed / zip member
        handle.write(data)
        handle.flush()
        return _stage_parquet_path(conn, stage, spec, info, handle.name, needed)


def _stage_parquet_path(
    conn, stage: str, spec: TableSpec, info: FileInfo, path: str, needed: dict[str, tuple[str, ...]]
) -> list[str]:
    try:
        described = conn.execute(
            "select name, type from parquet_schema($p) where num_children is "
            "null or num_children = 0",
            {"p": path},
        ).fetchall()
        columns = [name for name, _ in described]
    except duckdb.Error as exc:
        raise SourceError(
            f"{info.relative}: not a readable parquet file ({exc})", file=info.relative
        ) from exc
    snake = check_header(info, columns)
    missing = missing_required(needed, snake)
    reason = "missing_required_column" if missing else None
    detail = missing_detail(info, spec, missing, snake, needed) if missing else None
    packed = ", ".join(f'"{s}" := "{c}"' for c, s in zip(columns, snake, strict=True))
    try:
        conn.execute(
            f"""insert into {stage} ({STAGE_COLS})
            select $file, file_row_number + 1, $day::date, to_json(struct_pack({packed}))::varchar,
                   $reason, $detail
            from read_parquet($p, file_row_number = true) order by file_row_number""",
            {
                "file": info.relative,
                "day": info.partition_date,
                "p": path,
                "reason": reason,
                "detail": detail,
            },
        )
    except duckdb.Error as exc:
        raise SourceError(
            f"{info.relative}: cannot read parquet rows ({exc})", file=info.relative
        ) from exc
    return extra_keys(spec, snake)
