"""The `files` source: read one raw table's landing files for some partition dates.

Layout (docs/contracts.md): `<landing>/<table>/dt=YYYY-MM-DD/*.{jsonl,json,csv,parquet}`; files
directly under `<landing>/<table>/` are "undated" and assigned to partitions by their date column
later (in `load`). Every input row becomes one staging row `(source_file, source_line,
partition_date, payload, pre_reason, pre_detail)`: `payload` is the row as a JSON object text (or
the raw text when it cannot be parsed) so one validation path serves every format, and problems
the reader sees (bad CSV, bad UTF-8, a missing required column) are carried as `pre_reason` so
the row is quarantined with its file and line, never lost. JSON lines are not parsed here: the
validation query parses each line once and quarantines the malformed ones (`malformed_json`).

Line numbers (`source_line`, 1-based): JSON-lines = physical line; CSV = physical line where the
record starts (quoted newlines keep the count right); JSON array files = element number;
parquet = row number in the file.

Missing required column (CSV/parquet header, or a JSON row without the field): the file is still
read and *every* affected row is quarantined with `missing_required_column`, the detail naming
the file, the missing column, and the expected and found columns. A file that cannot be read at
all (corrupt parquet, unreadable path) raises `SourceError`, because its rows cannot be counted.
Empty files are reported as warnings and contribute no rows. Columns outside the contract are
kept in the payload (so quarantine shows them) and reported as `extra_columns`.
"""

from __future__ import annotations

import mmap
import os
import re

import duckdb
import pyarrow as pa

from orchestration.sources.cased import uniform_cased
from orchestration.sources.discover import (
    COMPRESSED_SUFFIXES,
    DATA_SUFFIXES,
    MAGIC,
    SUPPORTED_SUFFIXES,
    FileInfo,
    SkippedFile,
    list_files,
)
from orchestration.sources.read_json import is_json_document, stage_json_array, stage_jsonl
from orchestration.sources.read_tabular import stage_csv, stage_parquet
from orchestration.sources.stage import (
    ReadResult,
    count_rows,
    create_stage,
    direct_columns,
    drop_stage,
    register_lines,
)
from orchestration.sources.tables import TABLES, SourceError, TableSpec, table_spec, to_snake

__all__ = [  # the files source's entry points (the readers and layout live beside it)
    "COMPRESSED_SUFFIXES",
    "DATA_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "TABLES",
    "FileInfo",
    "ReadResult",
    "SkippedFile",
    "SourceError",
    "TableSpec",
    "create_stage",
    "decode_to_utf8",
    "direct_columns",
    "drop_stage",
    "list_files",
    "stage_files",
    "table_spec",
]

_NON_SPACE = re.compile(rb"\S")


def decode_to_utf8(data: bytes, encoding: str | None, relative: str) -> bytes:
    """The file's text as UTF-8: a UTF-16 BOM decides by itself; else the source's declared
    `encoding:` (latin-1, cp1252, ...) is decoded; UTF-8 (with or without BOM) passes as is."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    if _utf8_name(encoding):
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{relative}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid "
            f"{encoding} (the source's `encoding:`); check the file's encoding",
            file=relative,
        ) from exc


def stage_files(
    conn: duckdb.DuckDBPyConnection,
    stage: str,
    spec: TableSpec,
    files: list[FileInfo],
    source=None,
) -> ReadResult:
    """Stage every row of `files` (see `create_stage`); the rows are read as `<stage>_rows`,
    well-formed CSV as `<stage>_cols`. `source` (a sources.yml mapping) sets the CSV options,
    the JSON records path and which header names count for the required columns."""
    result = ReadResult(files=list(files))
    lines: list[pa.Table] = []
    table_rows = 0  # rows in the stage table (created empty by `create_stage`)
    needed = _needed_columns(spec, source)
    for info in files:
        fmt = info.format
        data = None if fmt == "parquet" and not info.compressed else _file_data(info, source)
        if data is not None and not _NON_SPACE.search(data):
            result.empty_files.append(info.relative)
            result.rows_per_file[info.relative] = 0
            continue
        if data is None and info.path.stat().st_size == 0:
            result.empty_files.append(info.relative)
            result.rows_per_file[info.relative] = 0
            continue
        before, staged_lines, staged_tables = table_rows, len(lines), len(result.tables)
        if fmt == "parquet":
            extra = stage_parquet(conn, stage, spec, info, data, needed)
        elif fmt == "csv":
            extra = stage_csv(conn, stage, spec, info, data, needed, source, result)
        elif fmt == "json" and is_json_document(data, source):
            extra = stage_json_array(conn, stage, spec, info, data, source, result)
        else:
            extra = stage_jsonl(conn, stage, spec, info, lines, data)
        if not (fmt == "csv" and len(result.tables) > staged_tables):  # Arrow CSV: no insert
            table_rows = count_rows(conn, stage)
        rows = (
            table_rows
            - before
            + sum(t.num_rows for t in lines[staged_lines:])
            + sum(t.num_rows for t in result.tables[staged_tables:])
        )
        result.rows_per_file[info.relative] = rows
        if rows == 0:
            result.empty_files.append(info.relative)
        if extra and (source is None or source.default_columns):
            result.extra_columns[info.relative] = extra
    register_lines(conn, stage, lines)
    if result.tables:
        result.tables, result.cased = uniform_cased(result.tables)
        direct = pa.concat_tables(result.tables, promote_options="default")
        result.direct_names = direct.schema.names
        conn.register(f"{stage}_arrow", direct)
        conn.execute(f"create or replace temp view {stage}_cols as select * from {stage}_arrow")
    return result


def _file_data(info: FileInfo, source) -> bytes | mmap.mmap:
    """The file's UTF-8 bytes (decompressed, decoded). A plain CSV file in UTF-8 is
    memory-mapped instead of read: its pages are parsed where they are in the page cache (a
    read copied a 140 MB export into a fresh bytes object: 0.07 CPU s, a fifth of Arrow's
    parse). Any other file, or a mapped one that turns out compressed or UTF-16, is read."""
    encoding = getattr(source, "encoding", None)
    if info.format == "csv" and not info.compressed and _utf8_name(encoding):
        mapped = _mapped(info)
        if mapped is not None:
            return mapped
    data = info.read_bytes()
    return data if info.format == "parquet" else decode_to_utf8(data, encoding, info.relative)


def _utf8_name(encoding: str | None) -> bool:
    return encoding is None or encoding.replace("-", "").replace("_", "").lower() in (
        "utf8",
        "utf8sig",
    )


_NOT_PLAIN = (b"\xff\xfe", b"\xfe\xff", *MAGIC)  # UTF-16 BOMs, compression magic bytes


def _mapped(info: FileInfo) -> mmap.mmap | None:
    """The file memory-mapped read-only, or None (empty, unmappable, or not plain UTF-8 text:
    `read_bytes` then reads it, or reports why it cannot)."""
    try:
        with info.path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return None
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    if mapped[:4].startswith(_NOT_PLAIN):
        return None
    return mapped


def _needed_columns(spec: TableSpec, source) -> dict[str, tuple[str, ...]]:
    """Required contract column -> header names (snake_case) that can provide it."""
    if source is None or source.default_columns:
        return {c: tuple(to_snake(a) for a in spec.aliases(c)) for c in spec.required}
    needed = {}
    for col in spec.required:
        rule = source.columns.get(col)
        if rule is None:
            continue  # not mapped: the row rules report it
        if rule.paths and rule.const is None and not rule.file_name and rule.default is None:
            needed[col] = tuple(to_snake(p[0]) for p in rule.paths)
    return needed
