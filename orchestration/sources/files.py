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

import bz2
import csv
import errno
import gzip
import io
import json
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from contracts.raw import RAW, RawTable
from orchestration.sources.mappings import default_config, matches, specificity

DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".zip")
SUPPORTED_SUFFIXES = DATA_SUFFIXES + COMPRESSED_SUFFIXES
EXTRA_KEY_SAMPLE_LINES = 1000  # JSON files: keys outside the contract looked for in these
_NON_SPACE = re.compile(rb"\S")
_EPOCH_MS = re.compile(r"^\d{13}$")
_DT_DIR = re.compile(r"^dt=(\d{4})-(\d{1,2})-(\d{1,2})$")
STAGE_COLUMNS = (
    "source_file",
    "source_line",
    "partition_date",
    "payload",
    "pre_reason",
    "pre_detail",
)
_STAGE_COLS = ", ".join(STAGE_COLUMNS)


class SourceError(Exception):
    """A landing file or setting that cannot be used at all; names the file (and line/column
    when known) and what was expected."""

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file, self.line, self.column = file, line, column


@dataclass(frozen=True)
class TableSpec:
    """Contract of one raw table: column kinds, required columns, key and date columns."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (name, kind) kind: str | ts | num | json
    required: tuple[str, ...]  # must be present (header / field)
    keys: tuple[str, ...]  # null -> null_key
    date_columns: tuple[str, ...]  # undated files: first non-null decides the day
    future_checked: tuple[str, ...]  # timestamps that must not lie in the future
    unique_key: str | None = None  # duplicates counted (not removed) in the report
    extra_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def aliases(self, column: str) -> tuple[str, ...]:
        """Accepted input keys for a contract column, in priority order (snake, camelCase, extra)."""
        names = [column, to_camel(column), *self.extra_aliases.get(column, ())]
        return tuple(dict.fromkeys(names))

    @property
    def known_keys(self) -> frozenset[str]:
        return frozenset(a for c in self.column_names for a in self.aliases(c))


# Contract type -> the loader's column kind. Everything else (columns, required fields, keys,
# dates, aliases) is the raw contract in contracts/raw.py, which the quality suites read too.
_KINDS = {"VARCHAR": "str", "TIMESTAMP": "ts", "DOUBLE": "num", "JSON": "json"}


def _loader_spec(table: RawTable) -> TableSpec:
    return TableSpec(
        table.name,
        tuple((name, _KINDS[kind]) for name, kind in table.columns.items()),
        required=table.required,
        keys=table.keys,
        date_columns=table.date_columns,
        future_checked=table.future_checked,
        unique_key=table.unique_key,
        extra_aliases=dict(table.extra_aliases),
    )


TABLES: dict[str, TableSpec] = {name: _loader_spec(table) for name, table in RAW.items()}


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_snake(name: str) -> str:
    name = name.strip().lstrip("\ufeff")
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def table_spec(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise SourceError(
            f"unknown raw table {table!r}; expected one of {', '.join(TABLES)}"
        ) from None


@dataclass
class FileInfo:
    path: Path
    relative: str
    partition_date: date | None  # None: undated, assigned by the date column later
    source: str | None = None  # the sources.yml source that claims it (None: default layout)
    member: str | None = None  # zip archives: the member inside `path`
    fmt: str | None = None  # jsonl | json | csv | parquet (None: from the name)
    note: str | None = None  # said in the load's warnings (e.g. the suffix overrode `format:`)

    @property
    def data_name(self) -> str:
        """The file name without compression suffixes (the member's, for zip members)."""
        name = (self.member or self.path.name).lower()
        while True:
            stem, dot, ext = name.rpartition(".")
            if dot and "." + ext in COMPRESSED_SUFFIXES and ext != "zip":
                name = stem
            else:
                return name

    @property
    def format(self) -> str:
        if self.fmt:
            return self.fmt
        suffix = Path(self.data_name).suffix
        return {".csv": "csv", ".parquet": "parquet", ".json": "json"}.get(suffix, "jsonl")

    @property
    def compressed(self) -> bool:
        return self.member is not None or self.data_name != self.path.name.lower()

    def read_bytes(self) -> bytes:
        """The file's bytes, decompressed (gzip, bzip2, zstd by their magic bytes; zip members)."""
        try:
            if self.member is not None:
                with zipfile.ZipFile(self.path) as archive:
                    data = archive.read(self.member)
            else:
                data = self.path.read_bytes()
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise SourceError(
                f"{self.relative}: cannot read the file ({exc})", file=self.relative
            ) from exc
        return decompress(data, self.relative)


_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\x28\xb5\x2f\xfd": "zstd"}


def decompress(data: bytes, relative: str) -> bytes:
    """Undo gzip / bzip2 / zstd compression, recognised by magic bytes (nested layers too)."""
    for _ in range(3):
        kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
        if kind is None:
            return data
        try:
            if kind == "gzip":
                data = gzip.decompress(data)
            elif kind == "bzip2":
                data = bz2.decompress(data)
            else:
                data = _zstd_decompress(data)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise SourceError(
                f"{relative}: not a valid {kind} file ({exc}); the file is "
                "truncated or not compressed as its name says",
                file=relative,
            ) from exc
    return data


def _zstd_decompress(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - zstandard is a declared dependency
        raise ValueError("zstandard is not installed") from exc
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
        return reader.read()


@dataclass
class SkippedFile:
    relative: str
    reason: str
    table: str | None = None  # None: claimed by no source (reported to every table)
    partition_date: date | None = None
    ignored: bool = False  # hidden, or `on_skip: ignore`: reported, not failing


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
    incomplete: dict[str, str] = field(default_factory=dict)  # file -> pagination marker


def parse_dt(name: str) -> date | None:
    """`dt=2025-03-10` and `dt=2025-3-10` -> date; raises ValueError for impossible dates."""
    match = _DT_DIR.match(name)
    if not match:
        raise ValueError(name)
    year, month, day = (int(x) for x in match.groups())
    return date(year, month, day)


def discover(source_dir: Path, config=None) -> tuple[list[FileInfo], list[SkippedFile]]:
    """Every file under the landing folder (symlinked folders followed, zip archives opened):
    claimed by a source of `config` (sources.yml, else the default `<table>/**` layout), or
    skipped with the reason. Dates come from a `dt=` folder in the path, else rows decide."""
    config = config or default_config()
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise SourceError(
            f"landing folder {source_dir} does not exist or is not a folder "
            f"(expected {source_dir}/<table>/dt=YYYY-MM-DD/*.jsonl|csv|parquet)",
            file=str(source_dir),
        )
    files: list[FileInfo] = []
    skipped: list[SkippedFile] = []
    seen: set[str] = set()
    for folder, dirs, names in os.walk(source_dir, followlinks=True):
        real = os.path.realpath(folder)
        rel_folder = Path(folder).relative_to(source_dir).as_posix()
        if real in seen:
            ancestors = {os.path.realpath(p) for p in Path(folder).parents}
            loop = real in ancestors
            skipped.append(
                SkippedFile(
                    rel_folder + "/",
                    "symlinked folder points to one of its own parents (a loop); not read again"
                    if loop
                    else "symlinked folder points to a folder already read under another "
                    "name; not read twice (remove one link, or `ignore:` it in sources.yml)",
                    ignored=loop,
                )
            )
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            rel = path.relative_to(source_dir).as_posix()
            _classify(path, rel, config, matches, files, skipped)
    return files, skipped


def _classify(path: Path, rel: str, config, matches, files: list, skipped: list) -> None:
    parts = rel.split("/")
    if any(p.startswith((".", "_")) for p in parts):
        skipped.append(
            SkippedFile(rel, "hidden file or folder (name starts with . or _)", ignored=True)
        )
        return
    if matches(rel, config.ignore):
        skipped.append(
            SkippedFile(
                rel,
                "matches `ignore:` (sources.yml, or the defaults README*, *.md, sources.yml)",
                ignored=True,
            )
        )
        return
    ranked = [(specificity(rel, s.files), -i, s) for i, s in enumerate(config.sources)]
    best = max(ranked, key=lambda r: r[:2], default=(-1, 0, None))
    source = best[2] if best[0] >= 0 else None  # most specific pattern; ties: declared first
    table = source.table if source else None
    day = None
    for part in parts[:-1]:
        if part.startswith("dt="):
            try:
                day = parse_dt(part)
            except ValueError:
                skipped.append(
                    SkippedFile(
                        rel,
                        f"folder {part} is not a valid date (expected dt=YYYY-MM-DD)",
                        table,
                        ignored=bool(source and source.on_skip == "ignore"),
                    )
                )
                return
        elif source is not None and source.partition_folder == "epoch_ms" and _EPOCH_MS.match(part):
            # Segment's S3 layout: segment-logs/<source-id>/<received day, epoch ms>/file.gz
            day = datetime.fromtimestamp(int(part) / 1000, UTC).date()
    if source is None:
        skipped.append(
            SkippedFile(
                rel,
                "claimed by no source (no `files:` pattern in "
                "sources.yml, or <table>/** by default, matches it)",
                None,
                day,
            )
        )
        return
    ignored = source.on_skip == "ignore"
    broken = _broken_link(path)
    if broken:
        skipped.append(SkippedFile(rel, broken, table, day, ignored))
        return
    if rel.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m.filename for m in archive.infolist() if not m.is_dir()]
        except (OSError, zipfile.BadZipFile) as exc:
            skipped.append(
                SkippedFile(rel, f"not a readable zip archive ({exc})", table, day, ignored)
            )
            return
        for member in sorted(members):
            base = member.rsplit("/", 1)[-1]
            if base.startswith((".", "_")):
                continue
            info = FileInfo(path, f"{rel}!{member}", day, source.name, member)
            _add(info, source, files, skipped, ignored)
        return
    _add(FileInfo(path, rel, day, source.name), source, files, skipped, ignored)


def _broken_link(path: Path) -> str | None:
    """Why a symbolic link cannot be read (a loop, or a target that does not exist); None for
    a readable file. Reported per file, so the rest of the day still loads."""
    try:
        path.stat()
        return None
    except OSError as exc:
        target = os.readlink(path) if path.is_symlink() else "?"
        if exc.errno == errno.ELOOP:
            return f"symbolic link loop ({path.name} -> {target}); not read"
        return f"dangling symbolic link (points to {target}, which does not exist); not read"


def decode_to_utf8(data: bytes, encoding: str | None, relative: str) -> bytes:
    """The file's text as UTF-8: a UTF-16 BOM decides by itself; else the source's declared
    `encoding:` (latin-1, cp1252, ...) is decoded; UTF-8 (with or without BOM) passes as is."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    if encoding is None or encoding.replace("-", "").replace("_", "").lower() in (
        "utf8",
        "utf8sig",
    ):
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{relative}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid "
            f"{encoding} (the source's `encoding:`); check the file's encoding",
            file=relative,
        ) from exc


def _add(info: FileInfo, source, files: list, skipped: list, ignored: bool) -> None:
    suffix = Path(info.data_name).suffix
    if suffix in DATA_SUFFIXES:
        files.append(info)  # the format follows the name (.json: array, document or lines)
        json_family = {source.format, info.format} <= {"json", "jsonl"}  # one detection path
        if source.format not in ("auto", info.format) and not json_family:
            info.note = (
                f"{info.relative}: read as {info.format} (its suffix {suffix}); the source "
                f"{source.name!r} declares format: {source.format}"
            )
    elif source.format != "auto" and (info.compressed or not suffix):
        info.fmt = source.format  # e.g. Segment's S3 files: <id>.gz holding JSON lines
        files.append(info)
    else:
        skipped.append(
            SkippedFile(
                info.relative,
                "not a supported file type (expected "
                f"{', '.join(DATA_SUFFIXES)}, optionally compressed "
                f"{', '.join(COMPRESSED_SUFFIXES)}; or set `format:`)",
                source.table,
                info.partition_date,
                ignored,
            )
        )


def list_files(
    source_dir: Path, table: str, dates: list[date] | None, config=None
) -> tuple[list[FileInfo], list[SkippedFile]]:
    """Files of `table` for `dates` (dt folders) plus all undated files, and the skipped files
    that concern this load (this table's, or claimed by no source; dated ones in `dates`).
    `dates=None`: every date."""
    table_spec(table)
    found, skipped = discover(source_dir, config)
    wanted = None if dates is None else set(dates)

    def relevant(day: date | None) -> bool:
        return day is None or wanted is None or day in wanted

    files = [f for f in found if _table_of(f, config) == table and relevant(f.partition_date)]
    concern = [s for s in skipped if s.table in (None, table) and relevant(s.partition_date)]
    return files, concern


def _table_of(info: FileInfo, config) -> str | None:
    config = config or default_config()
    return next((s.table for s in config.sources if s.name == info.source), None)


def stage_files(
    conn: duckdb.DuckDBPyConnection, stage: str, spec: TableSpec, files: list[FileInfo], source=None
) -> ReadResult:
    """Stage every row of `files` (see `create_stage`); the rows are read as `<stage>_rows`.
    `source` (a sources.yml mapping) sets the CSV options, the JSON records path and which
    header names count for the required columns."""
    result = ReadResult(files=list(files))
    lines: list[pa.Table] = []
    needed = _needed_columns(spec, source)
    for info in files:
        fmt = info.format
        data = None if fmt == "parquet" and not info.compressed else info.read_bytes()
        if data is not None and fmt != "parquet":
            data = decode_to_utf8(data, getattr(source, "encoding", None), info.relative)
        if data is not None and not _NON_SPACE.search(data):
            result.empty_files.append(info.relative)
            result.rows_per_file[info.relative] = 0
            continue
        if data is None and info.path.stat().st_size == 0:
            result.empty_files.append(info.relative)
            result.rows_per_file[info.relative] = 0
            continue
        before, staged_lines, staged_tables = _count(conn, stage), len(lines), len(result.tables)
        if fmt == "parquet":
            extra = _stage_parquet(conn, stage, spec, info, data, needed)
        elif fmt == "csv":
            extra = _stage_csv(conn, stage, spec, info, data, needed, source, result)
        elif fmt == "json" and _is_json_document(data, source):
            extra = _stage_json_array(conn, stage, spec, info, data, source, result)
        else:
            extra = _stage_jsonl(conn, stage, spec, info, lines, data)
        rows = (
            _count(conn, stage)
            - before
            + sum(t.num_rows for t in lines[staged_lines:])
            + sum(t.num_rows for t in result.tables[staged_tables:])
        )
        result.rows_per_file[info.relative] = rows
        if rows == 0:
            result.empty_files.append(info.relative)
        if extra and (source is None or source.default_columns):
            result.extra_columns[info.relative] = extra
    _register_lines(conn, stage, lines)
    if result.tables:
        conn.register(f"{stage}_cols", pa.concat_tables(result.tables, promote_options="default"))
    return result


def direct_columns(conn: duckdb.DuckDBPyConnection, stage: str) -> list[str]:
    """Snake names of the CSV columns in `<stage>_cols` (the Arrow-read CSV files)."""
    names = [d[0] for d in conn.execute(f"select * from {stage}_cols limit 0").description]
    return [n[2:] for n in names if n.startswith("d_")]


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


_LINES_SCHEMA = pa.schema(
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
    Arrow slices of the file bytes registered as `<stage>_lines` so their text is not copied
    before it is parsed. `quarantine_rowid` is set only when re-validating quarantined rows."""
    conn.execute(f"""create or replace temp table {stage} (source_file varchar, source_line bigint,
        partition_date date, payload varchar, pre_reason varchar, pre_detail varchar,
        quarantine_rowid bigint)""")
    _register_lines(conn, stage, [])
    conn.execute(f"""create or replace temp view {stage}_rows as
        select * from {stage} union all
        select source_file::varchar, source_line, partition_date, payload::varchar, null, null, null
        from {stage}_lines""")


def drop_stage(conn: duckdb.DuckDBPyConnection, stage: str) -> None:
    """Drop the stage and release the file bytes its JSON lines point into."""
    conn.execute(f"drop view if exists {stage}_rows")
    conn.unregister(f"{stage}_lines")
    conn.unregister(f"{stage}_cols")
    conn.execute(f"drop table if exists {stage}")


def _register_lines(conn: duckdb.DuckDBPyConnection, stage: str, lines: list[pa.Table]) -> None:
    table = pa.concat_tables(lines) if lines else _LINES_SCHEMA.empty_table()
    conn.register(f"{stage}_lines", table)


def _count(conn: duckdb.DuckDBPyConnection, stage: str) -> int:
    return conn.execute(f"select count(*) from {stage}").fetchall()[0][0]


def _insert_frame(conn: duckdb.DuckDBPyConnection, stage: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    conn.register("_stage_frame", frame)
    try:
        conn.execute(
            f"insert into {stage} ({_STAGE_COLS}) select source_file, source_line, partition_date::date, "
            f"payload, pre_reason, pre_detail from _stage_frame"
        )
    finally:
        conn.unregister("_stage_frame")


def _missing_required(needed: dict[str, tuple[str, ...]], found: list[str]) -> list[str]:
    present = set(found)
    return [c for c, names in needed.items() if not present.intersection(names)]


def _missing_detail(
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


def _extra(spec: TableSpec, found: list[str]) -> list[str]:
    return [c for c in found if c not in spec.known_keys]


def _stage_jsonl(
    conn, stage: str, spec: TableSpec, info: FileInfo, lines: list[pa.Table], data: bytes
) -> list[str]:
    """JSON lines: split on newlines with numpy into a zero-copy Arrow array of the lines (with
    their numbers), appended to `lines`; they are parsed once, later, by the validation query
    (which also quarantines malformed lines). Invalid UTF-8 -> Python path into the stage table.
    Lines keep their trailing newline (JSON whitespace) to avoid a copy; blank lines are skipped."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        _stage_jsonl_python(conn, stage, info, data)
        return _json_extra_keys(conn, stage, spec, info)
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    if not len(ends) or ends[-1] != len(data):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[bom], ends[:-1]]).astype(np.int64)
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    offsets[0] = bom
    n = len(ends)
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
    short = np.flatnonzero(ends - starts <= 2)
    blank = [i for i in short if not data[starts[i] : ends[i]].strip()]
    keep = np.ones(n, bool)
    keep[blank] = False
    day = (
        pa.nulls(n, pa.date32())
        if info.partition_date is None
        else pa.array(
            np.full(n, info.partition_date.toordinal() - _EPOCH_ORDINAL, np.int32), pa.int32()
        ).cast(pa.date32())
    )
    file = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32)), pa.array([info.relative])
    )
    table = pa.Table.from_arrays(
        [file, pa.array(np.arange(1, n + 1)), day, text], schema=_LINES_SCHEMA
    )
    if not keep.all():
        table = table.filter(pa.array(keep))
    lines.append(table)
    return sorted(_extra(spec, _sample_keys(table.column("payload"))))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _sample_keys(text: pa.ChunkedArray) -> list[str]:
    """Keys of the objects among the first EXTRA_KEY_SAMPLE_LINES lines, in first-seen order."""
    keys: dict[str, None] = {}
    for line in text.slice(0, EXTRA_KEY_SAMPLE_LINES).to_pylist():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            keys.update(dict.fromkeys(record))
    return list(keys)


def _stage_jsonl_python(conn, stage: str, info: FileInfo, data: bytes) -> None:
    """Slow path for files with invalid UTF-8: decode line by line, quarantine the bad lines."""
    rows = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            text, reason, detail = raw.decode("utf-8"), None, None
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", errors="replace")
            reason = "bad_encoding"
            detail = (
                f"byte 0x{raw[exc.start]:02x} at position {exc.start} of the line is not "
                f"valid UTF-8 (expected UTF-8 text)"
            )
        rows.append((info.relative, number, info.partition_date, text, reason, detail))
    _insert_frame(conn, stage, pd.DataFrame(rows, columns=list(STAGE_COLUMNS)))


def _json_extra_keys(conn, stage: str, spec: TableSpec, info: FileInfo) -> list[str]:
    """Keys outside the contract, looked for in the first EXTRA_KEY_SAMPLE_LINES lines of the
    file (a full scan would parse every line once more)."""
    keys = conn.execute(
        f"""select distinct unnest(json_keys(payload)) from
            (select payload from {stage} where source_file = $file and pre_reason is null
             order by source_line limit {EXTRA_KEY_SAMPLE_LINES})
            where json_valid(payload) and json_type(payload) = 'OBJECT'""",
        {"file": info.relative},
    ).fetchall()
    return sorted(k for (k,) in keys if k not in spec.known_keys)


def _parse_document(data: bytes) -> object | None:
    """The file as one JSON value, or None when it is not exactly one (JSON lines, or broken).
    Decided by parsing, not by the first line: `{"object":"list","data":[...]}` on one line
    (json.dump, jq -c) is a document. A JSON-lines file fails fast, right after its first
    record ("Extra data")."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None


RECORD_KEYS = ("data", "results", "records", "items")  # where API list responses keep rows


def records_key(document: object, source) -> str | None:
    """The key of a JSON object document that holds its records: `records_path`, else the one
    of RECORD_KEYS holding a list (an API list response such as Stripe's `data`)."""
    if not isinstance(document, dict):
        return None
    if source is not None and source.records_path:
        return source.records_path if source.records_path in document else None
    found = [k for k in RECORD_KEYS if isinstance(document.get(k), list)]
    return found[0] if len(found) == 1 else None


def _is_json_document(data: bytes, source) -> bool:
    """A JSON array file, or one object holding the records (see `records_key`)."""
    head = data[:64].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"["):
        return True
    if not head.startswith(b"{"):
        return False
    document = _parse_document(data)
    if records_key(document, source) is not None:
        return True
    declared = source is not None and source.records_path
    return bool(declared and document is None and b"\n" not in data.strip())


# Markers of a paginated API response that holds one page only (Stripe/Slack `has_more`,
# HubSpot `paging.next`, Zendesk `next_page`, Google-style `nextPageToken`).
def pagination_marker(document: dict) -> str | None:
    if document.get("has_more") is True:
        return "has_more: true"
    paging = document.get("paging")
    if isinstance(paging, dict) and paging.get("next"):
        return "paging.next is set"
    for key in ("next_page", "nextPageToken", "next_page_token", "next"):
        if document.get(key):
            return f"{key} is set"
    return None


def _stage_json_array(
    conn,
    stage: str,
    spec: TableSpec,
    info: FileInfo,
    data: bytes,
    source=None,
    result: ReadResult | None = None,
) -> list[str]:
    duplicated: list[str] = []
    try:
        items = json.loads(
            data.decode("utf-8-sig"), object_pairs_hook=lambda p: _no_dup(p, duplicated)
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(
            f"{info.relative}: not a valid JSON array ({exc}); expected "
            "[{...}, ...] or JSON lines",
            file=info.relative,
            line=getattr(exc, "lineno", None),
        ) from exc
    if duplicated and result is not None:
        keys = ", ".join(sorted(set(duplicated))[:5])
        result.warnings.append(
            f"{info.relative}: {len(duplicated)} object(s) repeat a key ({keys}); the last "
            "value was kept"
        )
    if isinstance(items, dict) and result is not None:
        marker = pagination_marker(items)
        if marker:
            result.incomplete[info.relative] = (
                f"{marker}: the export holds one page of a paginated API response; fetch "
                "every page (e.g. Stripe's starting_after) and land them all"
            )
    if isinstance(items, dict):
        key = records_key(items, source) or (source.records_path if source else None)
        if key and not (source is not None and source.records_path) and result is not None:
            result.warnings.append(
                f"{info.relative}: records read from the document's `{key}` list (set "
                "`records_path:` in sources.yml to choose another key)"
            )
        document, items = items, items.get(key) if key else None
        if not isinstance(items, list):
            raise SourceError(
                f"{info.relative}: records_path {key!r} is not a list of records in this JSON "
                f"document (its keys: {', '.join(list(document)[:10])})"
                if key
                else f"{info.relative}: a JSON object without a list of records (expected one "
                f"of {', '.join(RECORD_KEYS)}, or set `records_path:`)",
                file=info.relative,
            )
    rows = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            rows.append(
                (
                    info.relative,
                    number,
                    info.partition_date,
                    json.dumps(item, ensure_ascii=False),
                    None,
                    None,
                )
            )
        else:
            rows.append(
                (
                    info.relative,
                    number,
                    info.partition_date,
                    json.dumps(item),
                    "malformed_json",
                    f"element {number} is {type(item).__name__}, expected an object",
                )
            )
    _insert_frame(conn, stage, pd.DataFrame(rows, columns=list(STAGE_COLUMNS)))
    return _json_extra_keys(conn, stage, spec, info)


def _no_dup(pairs: list[tuple[str, object]], duplicated: list[str]) -> dict:
    """object_pairs_hook: note keys that appear twice in one object (json keeps the last)."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        duplicated += [k for k, _ in pairs if k in seen or seen.add(k)]
    return obj


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


def _stage_csv(
    conn,
    stage: str,
    spec: TableSpec,
    info: FileInfo,
    raw: bytes,
    needed: dict[str, tuple[str, ...]],
    source=None,
    result: ReadResult | None = None,
) -> list[str]:
    csv.field_size_limit(1 << 30)
    delimiter = source.csv_delimiter if source is not None else ","
    head = raw[:65536]
    if len(head) < len(raw):  # the header is on the first line(s)
        head = head[: head.rindex(b"\n") + 1] if b"\n" in head else raw
    text = head.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise SourceError(
            f"{info.relative}: line 1: cannot parse the CSV header ({exc})",
            file=info.relative,
            line=1,
        ) from exc
    header = check_header(info, header)
    missing = _missing_required(needed, header)
    missing_detail = _missing_detail(info, spec, missing, header, needed) if missing else None
    table = _read_csv_fast(info, raw, header, delimiter, missing_detail)
    if table is not None:
        if result is not None:
            result.tables.append(table)
        return _extra(spec, header)
    text = raw.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next(reader)  # the header, read above
    records: list[tuple[int, list[str] | None, str | None]] = []
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
    if source is not None and source.csv_footer == "auto":
        footer = _footer_start(records, len(header))
        if footer < len(records):
            if result is not None:
                result.footer_lines[info.relative] = len(records) - footer
            records = records[:footer]
    rows = []
    for start, fields, error in records:
        if fields is None:
            rows.append((info.relative, start, info.partition_date, None, "malformed_csv", error))
            continue
        if not any(f.strip() for f in fields):
            continue
        record_text = delimiter.join(fields)
        if _has_bad_bytes(record_text):
            rows.append(
                (
                    info.relative,
                    start,
                    info.partition_date,
                    _clean(record_text),
                    "bad_encoding",
                    f"{info.relative}: line {start}: bytes that are not valid UTF-8 "
                    "(expected UTF-8 text)",
                )
            )
            continue
        if len(fields) != len(header):
            rows.append(
                (
                    info.relative,
                    start,
                    info.partition_date,
                    record_text,
                    "malformed_csv",
                    f"{info.relative}: line {start}: expected {len(header)} fields "
                    f"({', '.join(header)}), found {len(fields)}",
                )
            )
            continue
        payload = json.dumps(
            {h: (v if v.strip() != "" else None) for h, v in zip(header, fields, strict=True)},
            ensure_ascii=False,
        )
        if missing_detail:
            rows.append(
                (
                    info.relative,
                    start,
                    info.partition_date,
                    payload,
                    "missing_required_column",
                    missing_detail,
                )
            )
        else:
            rows.append((info.relative, start, info.partition_date, payload, None, None))
    _insert_frame(conn, stage, pd.DataFrame(rows, columns=list(STAGE_COLUMNS)))
    return _extra(spec, header)


def _read_csv_fast(
    info: FileInfo, raw: bytes, header: list[str], delimiter: str, missing_detail: str | None
) -> pa.Table | None:
    """Well-formed CSV (UTF-8, one record per line, every record as wide as the header, no
    blank lines) parsed by Arrow's multi-threaded reader into a direct stage table (text
    columns `d_<snake name>` plus the stage columns); None for anything else, which the
    line-by-line reader then handles."""
    if b"\r" in raw[:4096] and b"\r\n" not in raw[:4096]:
        return None  # old Mac line ends: the slow path counts lines right
    data = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    names = [f"d_{h}" for h in header]
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, newlines_in_values=False, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
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
    return table


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


def _stage_parquet(
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
    missing = _missing_required(needed, snake)
    reason = "missing_required_column" if missing else None
    detail = _missing_detail(info, spec, missing, snake, needed) if missing else None
    packed = ", ".join(f'"{s}" := "{c}"' for c, s in zip(columns, snake, strict=True))
    try:
        conn.execute(
            f"""insert into {stage} ({_STAGE_COLS})
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
    return _extra(spec, snake)
