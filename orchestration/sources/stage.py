"""The stage of one batch: every input row as `(source_file, source_line, partition_date,
payload, pre_reason, pre_detail)` in a temp table, JSON lines as Arrow slices of the file
bytes, Arrow-read CSV as text columns; plus the helpers the readers share (inserting rows,
missing required columns, keys outside the contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from orchestration.sources.discover import FileInfo
from orchestration.sources.tables import TableSpec

STAGE_COLUMNS = (
    "source_file",
    "source_line",
    "partition_date",
    "payload",
    "pre_reason",
    "pre_detail",
)

STAGE_COLS = ", ".join(STAGE_COLUMNS)

EXTRA_KEY_SAMPLE_LINES = 1000  # JSON files: keys outside the contract looked for in these


@dataclass
class ReadResult:
    """What the reader found besides the staged rows: per-file facts for the report."""

    files: list[FileInfo] = field(default_factory=list)
    rows_per_file: dict[str, int] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    footer_lines: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)  # CSV read by Arrow (direct stage)
    padded: set[str] = field(default_factory=set)  # their space-padded columns
    cased: set[str] = field(default_factory=set)  # their cased copies (`l_`/`u_` columns)
    incomplete: dict[str, str] = field(default_factory=dict)  # file -> pagination marker
    direct_names: list[str] = field(default_factory=list)  # columns of `<stage>_cols`


def direct_columns(read: ReadResult) -> list[str]:
    """Snake names of the CSV columns in `<stage>_cols` (the CSV files read by Arrow), from the
    registered table's schema (no catalog query)."""
    return [n[2:] for n in read.direct_names if n.startswith("d_")]


LINES_SCHEMA = pa.schema(
    [
        ("source_file", pa.dictionary(pa.int32(), pa.string())),
        ("source_line", pa.int64()),
        ("partition_date", pa.date32()),
        ("payload", pa.large_string()),
    ]
)


def create_stage(conn: duckdb.DuckDBPyConnection, stage: str) -> None:
    """The staged rows of one batch, read through the view `<stage>_rows`: the temp table
    `<stage>` (CSV, parquet, JSON arrays, replayed payloads) plus the JSON lines, which stay
    Arrow slices of the file bytes registered as `<stage>_lines` (by `register_lines`, when
    there are any) so their text is not copied before it is parsed. `quarantine_rowid` is set
    only when re-validating quarantined rows."""
    conn.execute(f"""create or replace temp table {stage} (source_file varchar, source_line bigint,
        partition_date date, payload varchar, pre_reason varchar, pre_detail varchar,
        quarantine_rowid bigint)""")
    conn.execute(f"create or replace temp view {stage}_rows as select * from {stage}")


def drop_stage(conn: duckdb.DuckDBPyConnection, stage: str) -> None:
    """Drop the stage and release the file bytes its JSON lines point into."""
    conn.execute(f"drop view if exists {stage}_rows")
    conn.execute(f"drop view if exists {stage}_cols")
    conn.unregister(f"{stage}_lines")
    conn.unregister(f"{stage}_arrow")
    conn.execute(f"drop table if exists {stage}")


LINES_CHUNK_ROWS = 32 * 1024
# DuckDB's rows per row group. An INSERT keeps the order of its input by writing each input batch
# (an Arrow chunk) on its own and merging the batches smaller than a row group afterwards, which
# copies them once more: Arrow's CSV reader makes a chunk per 1 MiB block (~7k rows), and that
# merge was a third of a CSV insert's cost.
ROW_GROUP_ROWS = 122_880


def row_group_chunks(table: pa.Table) -> pa.Table:
    """`table` in chunks of ROW_GROUP_ROWS rows (one copy of its buffers), unless every chunk
    but the last has that many rows already; one large chunk is sliced (no copy) so that DuckDB
    scans it on every core."""
    sizes = [len(c) for c in table.column(0).chunks]
    if len(sizes) == 1 and sizes[0] > ROW_GROUP_ROWS:
        return pa.Table.from_batches(table.to_batches(max_chunksize=ROW_GROUP_ROWS), table.schema)
    if all(n >= ROW_GROUP_ROWS for n in sizes[:-1]):
        return table
    batches = table.combine_chunks().to_batches(max_chunksize=ROW_GROUP_ROWS)
    return pa.Table.from_batches(batches, table.schema)


def register_lines(conn: duckdb.DuckDBPyConnection, stage: str, lines: list[pa.Table]) -> None:
    """Register the batch's JSON lines in chunks of LINES_CHUNK_ROWS (zero-copy slices) and add
    them to `<stage>_rows`: DuckDB scans an Arrow table one chunk per task, and a file is one
    chunk, so three files on two cores would leave one core idle a third of the query. No
    lines: nothing registered (an empty Arrow table cost a millisecond per batch)."""
    if not lines:
        return
    table = pa.concat_tables(lines)
    batches = table.to_batches(max_chunksize=LINES_CHUNK_ROWS)
    conn.register(f"{stage}_lines", pa.Table.from_batches(batches, LINES_SCHEMA))
    conn.execute(f"""create or replace temp view {stage}_rows as
        select * from {stage} union all
        select source_file::varchar, source_line, partition_date, payload::varchar, null, null, null
        from {stage}_lines""")


def count_rows(conn: duckdb.DuckDBPyConnection, stage: str) -> int:
    return conn.execute(f"select count(*) from {stage}").fetchall()[0][0]


def insert_frame(conn: duckdb.DuckDBPyConnection, stage: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    conn.register("_stage_frame", frame)
    try:
        conn.execute(
            f"insert into {stage} ({STAGE_COLS}) select source_file, source_line, partition_date::date, "
            f"payload, pre_reason, pre_detail from _stage_frame"
        )
    finally:
        conn.unregister("_stage_frame")


def is_utf8(data) -> bool:
    """Whether `data` (bytes, or a memory-mapped file) is valid UTF-8; ASCII (most exports) is
    told by a fast scan instead of decoding a copy of the whole file."""
    if is_ascii(data):
        return True
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_ASCII_CHUNK = 1 << 22


def is_ascii(data) -> bool:
    """Whether every byte of `data` (bytes or any buffer, e.g. a memory-mapped file) is ASCII:
    `bytes.isascii`, or numpy's max over 4 MiB chunks of a buffer (no copy of the file)."""
    if isinstance(data, bytes):
        return data.isascii()
    view = np.frombuffer(data, np.uint8)
    return all(
        view[start : start + _ASCII_CHUNK].max(initial=0) < 128
        for start in range(0, len(view), _ASCII_CHUNK)
    )


def missing_required(needed: dict[str, tuple[str, ...]], found: list[str]) -> list[str]:
    present = set(found)
    return [c for c, names in needed.items() if not present.intersection(names)]


def missing_detail(
    info: FileInfo,
    spec: TableSpec,
    missing: list[str],
    found: list[str],
    needed: dict[str, tuple[str, ...]],
) -> str:
    names = {c: list(dict.fromkeys(needed[c])) for c in missing}
    wanted = "; ".join(f"{c} from {' or '.join(n)}" for c, n in names.items() if n != [c])
    return (
        f"{info.relative}: missing required column(s) {', '.join(missing)}"
        + (f" ({wanted})" if wanted else "")
        + f"; expected columns "
        f"{', '.join(spec.column_names)} (required: {', '.join(spec.required)}); "
        f"found {', '.join(found) or '(none)'}"
    )


def extra_keys(spec: TableSpec, found: list[str]) -> list[str]:
    return [c for c in found if c not in spec.known_keys]
