"""Load landing files into `raw.<table>` with row-level quarantine.

One mechanism for every file-based source: the `demo` source is the generator's output folder,
the `files` source the user's landing folder; `_source` records which.

Per partition (day) the load is one transaction: delete that `_partition_date` from
`raw.<table>` and that table+partition from `raw.quarantine`, then insert the good rows and the
bad rows. Re-running a day therefore replaces it, and a range load equals the single-day loads.
Rows are never de-duplicated here (dbt staging does that); duplicates are counted in the report.
Speed: each payload is parsed once (`json_transform` to all contract keys; a parse failure is a
malformed line), JSON lines are read from Arrow slices of the file bytes without a staging copy,
all row rules are one CASE, and counts come from a few grouped queries per batch.
Replayed rows (see `replay_quarantine`) are replaced too when their partition is re-loaded from
the files, which stay the source of truth.

Row rules, first match wins, with the reason codes of docs/contracts.md: reader problems
(`malformed_json`, `malformed_csv`, `bad_encoding`, `missing_required_column`),
`value_too_large` (> 1 MiB in one column), `null_key`, `missing_required_column` (field absent
or empty), `wrong_type` (column named, value shown), `unknown_event` (type not
track/identify/page, or a track event not in the tracking plan), `negative_amount`,
`amount_out_of_range` (> SEGFLOW_DQ_MAX_AMOUNT), `invalid_value` (invoice currency / status
outside the contract's accepted values, period_end before period_start; NaN/Infinity amounts
are `wrong_type`), `missing_paid_date`, `implausible_timestamp` (year outside 1900-2200: an epoch
in a wrong unit), `timestamp_too_old` (before SEGFLOW_TIMESTAMP_FLOOR, when set),
`timestamp_in_future` (> now + 15 min), `outside_late_window` (event dated more than
`late_arrival_days` before its dt= partition). The rules are compiled in `rules.py` (column
expressions in `compiler.py`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from contracts.raw import RAW_TABLES
from orchestration.sources.diagnostics import empty_columns
from orchestration.sources.files import (
    SkippedFile,
    SourceError,
    TableSpec,
    create_stage,
    direct_columns,
    drop_stage,
    list_files,
    stage_files,
    table_spec,
)
from orchestration.sources.mappings import (
    SourceMapping,
    SourcesConfig,
    default_config,
    matches,
)
from orchestration.sources.rules import params, typed_sql

__all__ = [
    "RAW_TABLES",
    "LoadReport",
    "PartitionCounts",
    "ReplayReport",
    "SourceError",
    "ensure_raw_schema",
    "load_partitions",
    "replay_quarantine",
]

_SQL_TYPES = {"str": "VARCHAR", "ts": "TIMESTAMP", "num": "DOUBLE", "json": "JSON"}
_META = (
    "_partition_date DATE, _loaded_at TIMESTAMP, _source VARCHAR, _source_file VARCHAR, "
    "_source_line BIGINT"
)


@dataclass
class PartitionCounts:
    partition_date: date | None  # None: undated rows whose date column is unusable
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    duplicate_keys: int = 0  # extra rows sharing a message_id/invoice_id in the day
    duplicate_keys_other_partitions: int = 0  # keys also loaded in nearby other partitions


@dataclass
class LoadReport:
    table: str
    source_name: str
    source_dir: Path
    partitions: list[PartitionCounts]
    preview: pd.DataFrame
    quarantine_preview: pd.DataFrame
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    skipped: list[SkippedFile] = field(default_factory=list)
    rows_per_file: dict[str, int] = field(default_factory=dict)  # rows staged per file
    file_counts: dict[str, dict] = field(default_factory=dict)  # loaded/quarantined per file
    file_sources: dict[str, str | None] = field(default_factory=dict)
    presets: dict[str, str | None] = field(default_factory=dict)
    footer_lines: dict[str, int] = field(default_factory=dict)
    identity: dict[str, int] = field(default_factory=dict)  # external_id/email/unmatched
    unmatched_sample: list[tuple] = field(default_factory=list)
    fallbacks: dict[str, int] = field(default_factory=dict)  # "<col><-fallback" -> rows loaded
    # rows quarantined before their date was known (no partition): file -> reason -> rows
    unassigned: dict[str, dict[str, int]] = field(default_factory=dict)
    incomplete: dict[str, str] = field(default_factory=dict)  # file -> pagination marker
    dst: dict[str, int] = field(default_factory=dict)  # "<col> gap|overlap" -> rows (DST_RULE)
    mapping_errors: list[str] = field(default_factory=list)  # a mapped money/required field empty

    @property
    def blocking_skipped(self) -> list[SkippedFile]:
        """Files not read that fail the load's gate (not hidden, not `on_skip: ignore`)."""
        return [s for s in self.skipped if not s.ignored]

    def per_file_rows(self) -> list[dict]:
        """One row per file read or skipped: rows read = loaded + quarantined (+ rows of
        undated files that belong to days outside this load)."""
        rows = []
        for rel, read in sorted(self.rows_per_file.items()):
            c = self.file_counts.get(rel, {"loaded": 0, "quarantined": 0, "by_reason": {}})
            rows.append(
                {
                    "file": rel,
                    "status": "loaded",
                    "source": self.file_sources.get(rel),
                    "preset": self.presets.get(rel),
                    "rows_read": read,
                    "rows_loaded": c["loaded"],
                    "rows_quarantined": c["quarantined"],
                    "rows_other_days": read - c["loaded"] - c["quarantined"],
                    "footer_lines": self.footer_lines.get(rel, 0),
                    "quarantined_by_reason": ", ".join(
                        f"{k}={v}" for k, v in sorted(c["by_reason"].items())
                    ),
                    "reason": "",
                }
            )
        for s in self.skipped:
            rows.append(
                {
                    "file": s.relative,
                    "status": "ignored" if s.ignored else "skipped",
                    "source": None,
                    "preset": None,
                    "rows_read": 0,
                    "rows_loaded": 0,
                    "rows_quarantined": 0,
                    "rows_other_days": 0,
                    "footer_lines": 0,
                    "quarantined_by_reason": "",
                    "reason": s.reason,
                }
            )
        return rows

    @property
    def rows_read(self) -> int:
        return sum(p.rows_read for p in self.partitions)

    @property
    def rows_loaded(self) -> int:
        return sum(p.rows_loaded for p in self.partitions)

    @property
    def rows_quarantined(self) -> int:
        return sum(p.rows_quarantined for p in self.partitions)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for p in self.partitions:
            total.update(p.quarantined_by_reason)
        return dict(total)

    @property
    def files(self) -> list[str]:
        return sorted({f for p in self.partitions for f in p.files})

    @property
    def duplicate_keys(self) -> int:
        return sum(p.duplicate_keys for p in self.partitions)

    def per_partition_rows(self) -> list[dict]:
        return [
            {
                "partition_date": str(p.partition_date),
                "rows_read": p.rows_read,
                "rows_loaded": p.rows_loaded,
                "rows_quarantined": p.rows_quarantined,
                "quarantined_by_reason": ", ".join(
                    f"{k}={v}" for k, v in sorted(p.quarantined_by_reason.items())
                ),
                "duplicate_keys": p.duplicate_keys,
                "files": len(p.files),
            }
            for p in self.partitions
        ]


@dataclass
class ReplayReport:
    table: str
    candidates: int
    replayed: int
    still_failing_by_reason: dict[str, int]


def ensure_raw_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create schema `raw`, the three raw tables and `raw.quarantine` when absent."""
    conn.execute("create schema if not exists raw")
    for name in RAW_TABLES:
        spec = table_spec(name)
        cols = ", ".join(
            f'"{c}" {_SQL_TYPES[k] if k != "json" else "VARCHAR"}' for c, k in spec.columns
        )
        conn.execute(f"create table if not exists raw.{name} ({cols}, {_META})")
    conn.execute("""create table if not exists raw.quarantine (table_name VARCHAR,
        partition_date DATE, source_file VARCHAR, source_line BIGINT, payload VARCHAR,
        reason_code VARCHAR, reason_detail VARCHAR, quarantined_at TIMESTAMP,
        replayed_at TIMESTAMP)""")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _insert_good_and_bad(
    conn, spec: TableSpec, typed: str, where: str, now: datetime, source_name: str
) -> None:
    """Good rows keep the typed table's order (files sorted, lines ascending): no sort."""
    cols = ", ".join(f'"{c}"' for c in spec.column_names)
    conn.execute(
        f"""insert into raw.{spec.name}
        select {cols}, partition_date, $now, $source, source_file, source_line
        from {typed} where reason_code is null and {where}""",
        {"now": now, "source": source_name},
    )
    conn.execute(
        f"""insert into raw.quarantine
        select '{spec.name}', partition_date, source_file, source_line,
               rtrim(payload, chr(10) || chr(13)), reason_code,
               reason_detail, $now, null
        from {typed} where reason_code is not null and {where}
        order by source_file, source_line""",
        {"now": now},
    )


def _counts(
    conn, spec: TableSpec, typed: str, where: str, days: list[date | None], late_days: int
) -> list[PartitionCounts]:
    """Per-day counts of the rows of `typed` matching `where`, from a few grouped scans."""
    counts = {day: PartitionCounts(day) for day in days}
    for day, code, n in conn.execute(f"""select partition_date, reason_code, count(*)
                                         from {typed} where {where} group by all""").fetchall():
        part = counts[day]
        part.rows_read += n
        if code is None:
            part.rows_loaded += n
        else:
            part.rows_quarantined += n
            part.quarantined_by_reason[code] = n
    for day, files in conn.execute(f"""select partition_date, list(distinct source_file
                                       order by source_file) from {typed} where {where}
                                       group by all""").fetchall():
        counts[day].files = files
    key = spec.unique_key
    dated = [d for d in days if d is not None]
    if key and dated:
        for (
            day,
            n,
        ) in conn.execute(f"""select partition_date, count("{key}") - count(distinct "{key}")
                from {typed} where reason_code is null and partition_date is not null and {where}
                group by all""").fetchall():
            counts[day].duplicate_keys = n
        window = late_days + 2
        for day, n in conn.execute(
            f"""select t.partition_date, count(distinct t."{key}")
                from {typed} t join (select "{key}", _partition_date from raw.{spec.name}
                                     where _partition_date between $lo and $hi) r
                  on r."{key}" = t."{key}" and r._partition_date <> t.partition_date
                 and r._partition_date between t.partition_date - $w::integer
                                           and t.partition_date + $w::integer
                where t.reason_code is null and t.partition_date is not null and {where}
                group by all""",
            {
                "lo": min(dated) - timedelta(days=window),
                "hi": max(dated) + timedelta(days=window),
                "w": window,
            },
        ).fetchall():
            counts[day].duplicate_keys_other_partitions = n
    return list(counts.values())


def load_partitions(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    dates: list[date] | None,
    source_dir: Path,
    source_name: str,
    late_arrival_days: int,
    now: datetime | None = None,
    config: SourcesConfig | None = None,
    timestamp_floor: date | None = None,
    max_amount: float | None = None,
) -> LoadReport:
    """Load `table` for `dates` from `source_dir` (landing folder) into `raw.<table>`, through
    the declared mappings `config` (sources.yml; None: the default `<table>/dt=.../` layout).

    Days are processed in batches of up to BATCH_BYTES of input; each batch is one transaction
    (delete its partitions, insert good and quarantined rows). Raises `SourceError` for an
    unknown table, a missing source folder or an unreadable file; batches already committed
    stay, the failing batch writes nothing. Files that are not read are in `report.skipped`.
    `dates=None` loads every day found (the dry run of `segflow sources check`)."""
    t0 = time.perf_counter()
    spec = table_spec(table)
    now = now or _utcnow()
    config = config or default_config()
    source_dir = Path(source_dir)
    ensure_raw_schema(conn)
    files, skipped = list_files(source_dir, table, dates, config)
    report = LoadReport(table, source_name, source_dir, [], pd.DataFrame(), pd.DataFrame())
    report.skipped = skipped
    report.warnings += [
        f"{table}: skipped {s.relative}: {s.reason}" for s in skipped if not s.ignored
    ]
    sources = {s.name: s for s in config.sources}
    report.warnings += [f.note for f in files if f.note]
    report.file_sources = {f.relative: f.source for f in files}
    report.presets = {f.relative: sources[f.source].preset for f in files if f.source in sources}
    undated = [f for f in files if f.partition_date is None]
    if undated:
        _validate_files(
            conn,
            spec,
            undated,
            "_segflow_undated",
            sources,
            now,
            late_arrival_days,
            report,
            (timestamp_floor, max_amount),
        )
        conn.execute("update _segflow_undated set partition_date = derived_date")
    if dates is None:
        found = {f.partition_date for f in files if f.partition_date is not None}
        if undated:
            found |= {
                d
                for (d,) in conn.execute(
                    "select distinct partition_date from "
                    "_segflow_undated where partition_date is not null"
                ).fetchall()
            }
        dates = sorted(found)
    dates = sorted(set(dates))
    for batch in _batches(dates, files):
        batch_files = [f for f in files if f.partition_date in batch]
        for day in batch:
            if not undated and not any(f.partition_date == day for f in batch_files):
                report.warnings.append(f"{table}: no files for partition {day}")
        _validate_files(
            conn,
            spec,
            batch_files,
            "_segflow_typed",
            sources,
            now,
            late_arrival_days,
            report,
            (timestamp_floor, max_amount),
        )
        if undated:
            conn.execute(
                "insert into _segflow_typed select * from _segflow_undated "
                "where list_contains($days, partition_date)",
                {"days": batch},
            )
        conn.execute("begin transaction")
        try:
            conn.execute(
                f"delete from raw.{table} where list_contains($days, _partition_date)",
                {"days": batch},
            )
            conn.execute(
                "delete from raw.quarantine where table_name = $t and "
                "list_contains($days, partition_date)",
                {"t": table, "days": batch},
            )
            _insert_good_and_bad(conn, spec, "_segflow_typed", "true", now, source_name)
            conn.execute("commit")
        except Exception:
            conn.execute("rollback")
            raise
        report.partitions += _counts(conn, spec, "_segflow_typed", "true", batch, late_arrival_days)
        _file_counts(conn, "_segflow_typed", "true", report)
    if undated:
        _load_unassigned(conn, spec, undated, now, source_name, report)
        _file_counts(conn, "_segflow_undated", "partition_date is null", report)
    _finish(conn, table, dates, report)
    for name in ("_segflow_typed", "_segflow_undated"):
        conn.execute(f"drop table if exists {name}")
    report.elapsed_seconds = time.perf_counter() - t0
    return report


def _file_counts(conn, typed: str, where: str, report: LoadReport) -> None:
    """Per file: rows loaded / quarantined by reason, and identity matches."""
    for file, code, ident, used, dst, n in conn.execute(
        f"select source_file, reason_code, _identity, _fallback, _dst, count(*) from {typed} "
        f"where {where} group by all"
    ).fetchall():
        for hit in (dst or "").split(",") if dst else ():
            report.dst[hit] = report.dst.get(hit, 0) + n
        if used and code is None:
            for col in used.split(","):
                key = f"{col}<-fallback"
                report.fallbacks[key] = report.fallbacks.get(key, 0) + n
        counts = report.file_counts.setdefault(
            file, {"loaded": 0, "quarantined": 0, "by_reason": {}}
        )
        if code is None:
            counts["loaded"] += n
        else:
            counts["quarantined"] += n
            counts["by_reason"][code] = counts["by_reason"].get(code, 0) + n
        if ident is not None:
            report.identity[ident] = report.identity.get(ident, 0) + n
    if report.identity.get("unmatched"):
        report.unmatched_sample += [
            row
            for row in conn.execute(
                f"select source_file, source_line, user_id from {typed} where {where} and "
                "_identity = 'unmatched' order by source_file, source_line limit 20"
            ).fetchall()
        ]


def _validate_files(
    conn,
    spec: TableSpec,
    files: list,
    target: str,
    sources: dict,
    now: datetime,
    late_days: int,
    report: LoadReport,
    limits: tuple[date | None, float | None] = (None, None),
) -> None:
    """Stage `files`, one group per (source mapping, tabular or JSON), and write their typed,
    rule-checked rows to the temp table `target`."""
    groups: dict[tuple, list] = {}
    for f in files:
        groups.setdefault((f.source, f.format in ("csv", "parquet")), []).append(f)
    if not groups:
        groups[(None, False)] = []
    first = True
    for (name, tabular), group in groups.items():
        source = sources.get(name) if name else None
        sql = typed_sql(spec, "_segflow_stage_rows", source, tabular)
        create_stage(conn, "_segflow_stage")
        try:
            read = stage_files(conn, "_segflow_stage", spec, group, source)
            _note(report, read)
            verb = f"create or replace temp table {target} as" if first else f"insert into {target}"
            conn.execute(f"{verb} {sql}", params(sql, now, late_days, *limits))
            if read.tables:  # CSV read by Arrow: typed straight from its columns
                cols = direct_columns(conn, "_segflow_stage")
                direct = typed_sql(spec, "_segflow_stage_cols", source, True, cols)
                conn.execute(
                    f"insert into {target} {direct}", params(direct, now, late_days, *limits)
                )
            names = [f.relative for f in group]
            warnings, errors = empty_columns(conn, target, spec.name, source, names)
            report.warnings += warnings
            report.mapping_errors += errors
        finally:
            drop_stage(conn, "_segflow_stage")
        first = False


BATCH_BYTES = 192 * 1024 * 1024


def _batches(dates: list[date], files: list) -> list[list[date]]:
    """Group consecutive days so one validation query covers up to BATCH_BYTES of files: DuckDB
    parallelises a query over row groups, and a single small day would use one core."""
    size = Counter()
    for f in files:
        if f.partition_date is not None:
            size[f.partition_date] += f.path.stat().st_size
    batches: list[list[date]] = [[]]
    total = 0
    for day in dates:
        if batches[-1] and total + size[day] > BATCH_BYTES:
            batches.append([])
            total = 0
        batches[-1].append(day)
        total += size[day]
    return [b for b in batches if b]


def _load_unassigned(conn, spec: TableSpec, undated, now, source_name, report) -> None:
    """Undated rows whose date column is unusable cannot be placed in a partition: quarantine
    them with a null partition (replaced on every load that reads those files)."""
    names = [f.relative for f in undated]
    conn.execute("begin transaction")
    try:
        conn.execute(
            "delete from raw.quarantine where table_name = $t and partition_date is null "
            "and list_contains($files, source_file)",
            {"t": spec.name, "files": names},
        )
        conn.execute(
            """update _segflow_undated set
            reason_code = coalesce(reason_code, 'wrong_type'),
            reason_detail = coalesce(reason_detail, $d) where partition_date is null""",
            {"d": f"undated file: no usable {' / '.join(spec.date_columns)} to assign a partition"},
        )
        _insert_good_and_bad(
            conn, spec, "_segflow_undated", "partition_date is null", now, source_name
        )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    for file, code, n in conn.execute(
        "select source_file, reason_code, count(*) from _segflow_undated "
        "where partition_date is null group by all"
    ).fetchall():
        report.unassigned.setdefault(file, {})[code] = n
    (counts,) = _counts(conn, spec, "_segflow_undated", "partition_date is null", [None], 0)
    if counts.rows_read:
        report.partitions.append(counts)


def _note(report: LoadReport, read) -> None:
    report.extra_columns.update(read.extra_columns)
    report.incomplete.update(read.incomplete)
    report.warnings += read.warnings
    report.warnings += [f"{rel}: incomplete export: {why}" for rel, why in read.incomplete.items()]
    report.rows_per_file.update(read.rows_per_file)
    report.footer_lines.update(read.footer_lines)
    report.warnings += [
        f"{rel}: {n} footer line(s) of a report export not loaded"
        for rel, n in read.footer_lines.items()
    ]
    report.empty_files += read.empty_files
    for rel, cols in read.extra_columns.items():
        report.warnings.append(
            f"{rel}: extra columns outside the contract kept only in the payload: {', '.join(cols)}"
        )
    report.warnings += [f"{rel}: empty file (no rows)" for rel in read.empty_files]


def _finish(conn, table: str, dates: list[date], report: LoadReport) -> None:
    report.preview = conn.execute(
        f"""select * from raw.{table} where list_contains($d, _partition_date)
            order by _partition_date, _source_file, _source_line limit 20""",
        {"d": dates},
    ).df()
    report.quarantine_preview = conn.execute(
        """select * from raw.quarantine where table_name = $t
             and (list_contains($d, partition_date) or partition_date is null)
           order by partition_date, source_file, source_line limit 20""",
        {"t": table, "d": dates},
    ).df()


def _source_of(file: str, config: SourcesConfig, table: str) -> SourceMapping | None:
    """The mapping whose `files` patterns claim a landing file (zip members by their archive)."""
    path = file.split("!", 1)[0]
    for source in config.sources:
        if source.table == table and matches(path, source.files):
            return source
    return None


def replay_quarantine(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    source_name: str,
    late_arrival_days: int,
    partition_dates: list[date] | None = None,
    now: datetime | None = None,
    timestamp_floor: date | None = None,
    config: SourcesConfig | None = None,
    max_amount: float | None = None,
) -> ReplayReport:
    """Re-validate not-yet-replayed quarantined rows of `table` (after their payload was fixed
    in place, e.g. `update raw.quarantine set payload = ...`); rows that now pass are inserted
    into `raw.<table>` and marked with `replayed_at`. Rows still failing stay as they are.
    Each row is read through the mapping (sources.yml `config`) whose files it came from."""
    spec = table_spec(table)
    now = now or _utcnow()
    ensure_raw_schema(conn)
    create_stage(conn, "_segflow_replay")
    where = "table_name = $t and replayed_at is null"
    args: dict = {"t": table}
    if partition_dates is not None:
        where += " and list_contains($d, partition_date)"
        args["d"] = sorted(set(partition_dates))
    conn.execute(
        f"""insert into _segflow_replay
        select source_file, source_line, partition_date, payload,
          case when contains(payload, chr(65533)) then 'bad_encoding' end,
          case when contains(payload, chr(65533))
               then 'payload still holds undecodable bytes (U+FFFD)' end, rowid
        from raw.quarantine where {where}""",
        args,
    )
    config = config or default_config()
    groups: dict[tuple, list[str]] = {}
    for (file,) in conn.execute("select distinct source_file from _segflow_replay").fetchall():
        source = _source_of(file, config, table)
        name = (file.split("!", 1)[-1] if "!" in file else file).lower()
        tabular = any(s in name for s in (".csv", ".parquet"))
        groups.setdefault((source.name if source else None, tabular), []).append(file)
    verb = "create or replace temp table _segflow_replay_typed as"
    by_name = {s.name: s for s in config.sources}
    for (name, tabular), names in groups.items() or {(None, False): []}.items():
        sql = typed_sql(spec, "_segflow_replay_rows", by_name.get(name), tabular)
        sql = f"select * from ({sql}) where list_contains($replay_files, source_file)"
        conn.execute(
            f"{verb} {sql}",
            {
                **params(sql, now, late_arrival_days, timestamp_floor, max_amount),
                "replay_files": names,
            },
        )
        verb = "insert into _segflow_replay_typed"
    rows = conn.execute(
        "select reason_code, count(*) from _segflow_replay_typed group by all"
    ).fetchall()
    conn.execute("begin transaction")
    try:
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        conn.execute(
            f"""insert into raw.{table}
            select {cols}, partition_date, $now, $source, source_file, source_line
            from _segflow_replay_typed where reason_code is null""",
            {"now": now, "source": source_name},
        )
        conn.execute(
            """update raw.quarantine set replayed_at = $now where rowid in
            (select quarantine_rowid from _segflow_replay_typed where reason_code is null)""",
            {"now": now},
        )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    drop_stage(conn, "_segflow_replay")
    conn.execute("drop table if exists _segflow_replay_typed")
    return ReplayReport(
        table,
        sum(n for _, n in rows),
        sum(n for code, n in rows if code is None),
        {code: n for code, n in rows if code is not None},
    )
