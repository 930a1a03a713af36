"""Which landing files feed which raw table: every file under the landing folder is claimed by
the most specific `files:` pattern of a source (sources.yml, else `<table>/**`) or skipped with
its reason; `dt=` folders (or Segment's epoch-ms folders) give its partition date, compressed
files and zip members are opened by their magic bytes. Broken links are skipped per file, so
the rest of the day still loads."""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from orchestration.sources.globs import matches, specificity
from orchestration.sources.mappings import default_config
from orchestration.sources.tables import SourceError, table_spec

DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".zip")

SUPPORTED_SUFFIXES = DATA_SUFFIXES + COMPRESSED_SUFFIXES

_EPOCH_MS = re.compile(r"^\d{13}$")

_DT_DIR = re.compile(r"^dt=(\d{4})-(\d{1,2})-(\d{1,2})$")


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
MAGIC = tuple(_MAGIC)  # the first bytes of a compressed file (what `decompress` undoes)


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


def parse_dt(name: str) -> date | None:
    """`dt=2025-03-10` and `dt=2025-3-10` -> date; raises ValueError for impossible dates."""
    match = _DT_DIR.match(name)
    if not match:
        raise ValueError(name)
    year, month, day = (int(x) for x in match.groups())
    return date(year, month, day)


def discover(
    source_dir: Path, config=None, wanted: set[date] | None = None
) -> tuple[list[FileInfo], list[SkippedFile]]:
    """Every file under the landing folder (symlinked folders followed, zip archives opened):
    claimed by a source of `config` (sources.yml, else the default `<table>/**` layout), or
    skipped with the reason. Dates come from a `dt=` folder in the path, else rows decide.
    `wanted`: only these days matter to the caller, so a file in a valid `dt=` folder of
    another day is left out once the checks that report it without a day (hidden, ignored)
    pass: whatever else it would give (read, or skipped) carries that other day. Folders are
    walked as before (a link to a folder already read is still reported)."""
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
        prefix = "" if rel_folder == "." else rel_folder + "/"
        other_day = wanted is not None and _other_day(rel_folder.split("/"), wanted)
        for name in sorted(names):
            rel = prefix + name
            if other_day and not _hidden_or_ignored(rel, config):
                continue
            _classify(Path(folder) / name, rel, config, matches, files, skipped)
    return files, skipped


def _other_day(folders: list[str], wanted: set[date]) -> bool:
    """Whether the folders name a valid `dt=` day outside `wanted` (the day `_folder_day`
    gives every file there); False when a dt= folder is invalid (its files are skipped
    without a day) or an epoch-ms folder may set the day instead."""
    day = None
    for part in folders:
        if _EPOCH_MS.match(part):
            return False
        if part.startswith("dt="):
            try:
                day = parse_dt(part)
            except ValueError:
                return False
    return day is not None and day not in wanted


def _hidden_or_ignored(rel: str, config) -> bool:
    """The first two checks of `_classify`: files it skips without a day."""
    return any(p.startswith((".", "_")) for p in rel.split("/")) or matches(rel, config.ignore)


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
    source, unread = _claim(rel, config.sources)
    table = source.table if source else None
    try:
        day = _folder_day(parts, source)
    except ValueError as exc:
        skipped.append(
            SkippedFile(rel, str(exc), table, ignored=bool(source and source.on_skip == "ignore"))
        )
        return
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
    if unread is not None:
        glob, reason, block = unread
        skipped.append(
            SkippedFile(
                rel,
                f"claimed by source {source.name!r} (unread: {glob}) and not read: {reason}",
                table,
                day,
                ignored=not block,
            )
        )
        return
    ignored = source.on_skip == "ignore"
    broken = _broken_link(path)
    if broken:
        skipped.append(SkippedFile(rel, broken, table, day, ignored))
        return
    if rel.lower().endswith(".zip"):
        _add_zip(path, rel, day, source, files, skipped)
        return
    _add(FileInfo(path, rel, day, source.name), source, files, skipped, ignored)


def _folder_day(parts: list[str], source) -> date | None:
    """The partition day its folders give a file: `dt=YYYY-MM-DD`, or Segment's received-day
    folder in epoch ms when the source says so; ValueError naming a bad dt= folder."""
    day = None
    for part in parts[:-1]:
        if part.startswith("dt="):
            try:
                day = parse_dt(part)
            except ValueError:
                raise ValueError(
                    f"folder {part} is not a valid date (expected dt=YYYY-MM-DD)"
                ) from None
        elif source is not None and source.partition_folder == "epoch_ms" and _EPOCH_MS.match(part):
            # Segment's S3 layout: segment-logs/<source-id>/<received day, epoch ms>/file.gz
            day = datetime.fromtimestamp(int(part) / 1000, UTC).date()
    return day


def _add_zip(path: Path, rel: str, day, source, files: list, skipped: list) -> None:
    """Each member of a zip archive as a file of its own (`archive.zip!member`)."""
    ignored = source.on_skip == "ignore"
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m.filename for m in archive.infolist() if not m.is_dir()]
    except (OSError, zipfile.BadZipFile) as exc:
        skipped.append(
            SkippedFile(rel, f"not a readable zip archive ({exc})", source.table, day, ignored)
        )
        return
    for member in sorted(members):
        base = member.rsplit("/", 1)[-1]
        if base.startswith((".", "_")):
            continue
        info = FileInfo(path, f"{rel}!{member}", day, source.name, member)
        _add(info, source, files, skipped, ignored)


def _claim(rel: str, sources) -> tuple[object | None, tuple[str, str, bool] | None]:
    """The source claiming `rel`: the most specific pattern among every source's `files:` and
    `unread:` globs wins; on a tie a source that reads the file beats one that leaves it
    unread, then the one declared first. Returns (source, the `unread` entry when the file
    is claimed unread)."""
    best, best_rank = None, (-1, False, 0)
    for i, s in enumerate(sources):
        read = specificity(rel, s.files)
        skip = max((specificity(rel, (u[0],)), u) for u in s.unread) if s.unread else (-1, None)
        rank = (max(read, skip[0]), read >= skip[0], -i)
        if rank[0] >= 0 and rank > best_rank:
            best, best_rank = (s, None if rank[1] else skip[1]), rank
    return best if best is not None else (None, None)


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
    wanted = None if dates is None else set(dates)
    found, skipped = discover(source_dir, config, wanted)

    def relevant(day: date | None) -> bool:
        return day is None or wanted is None or day in wanted

    files = [f for f in found if _table_of(f, config) == table and relevant(f.partition_date)]
    concern = [s for s in skipped if s.table in (None, table) and relevant(s.partition_date)]
    return files, concern


def _table_of(info: FileInfo, config) -> str | None:
    config = config or default_config()
    return next((s.table for s in config.sources if s.name == info.source), None)
