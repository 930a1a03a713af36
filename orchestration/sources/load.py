"""Load landing files into `raw.<table>` with row-level quarantine.

One mechanism for every file-based source: the `demo` source is the generator's output folder,
the `files` source the user's landing folder; `_source` records which.

Per partition (day) the load is one transaction: delete that `_partition_date` from
`raw.<table>` and that table+partition from `raw.quarantine`, then insert the good rows and the
bad rows. Re-running a day therefore replaces it, and a range load equals the single-day loads.
Rows are never de-duplicated here (dbt staging does that); duplicates are counted in the report.
Speed: each payload is parsed once (`json_transform` to all contract keys; a parse failure is a
malformed line), JSON lines are read from Arrow slices of the file bytes without a staging copy,
all row rules are one CASE, the typed rows are written to raw once, straight from that query
(`raw_first.py`; the failing rows are typed again on their own for quarantine), and counts
come from a few grouped queries per batch.
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
`late_arrival_days` before its dt= partition). The rules are in `rules.py`, compiled into one
query per batch by `typed_query.py` (column expressions in `compiler.py`); the readers are
behind `files.py`, the report in `load_report.py` (filled by `load_counts.py`), the replay in
`replay.py`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from datetime import date, datetime
from pathlib import Path

import duckdb

from contracts.raw import RAW_TABLES
from orchestration.sources.diagnostics import empty_columns
from orchestration.sources.discover import list_files
from orchestration.sources.files import stage_files
from orchestration.sources.load_counts import file_counts, finish_report, new_report, note_read
from orchestration.sources.load_report import LoadReport, PartitionCounts, ReplayReport
from orchestration.sources.mappings import SourcesConfig, default_config
from orchestration.sources.raw_first import RawFirst, drop_temps, transaction
from orchestration.sources.raw_write import (
    ensure_raw_schema,
    grouped_counts,
    insert_good_and_bad,
    partition_counts,
    utcnow,
)
from orchestration.sources.replay import replay_quarantine
from orchestration.sources.rules import params
from orchestration.sources.stage import create_stage, direct_columns, drop_stage
from orchestration.sources.tables import SourceError, TableSpec, table_spec
from orchestration.sources.typed_query import typed_sql
from orchestration.sources.zones import register_zone_offsets

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
    now = now or utcnow()
    config = config or default_config()
    source_dir = Path(source_dir)
    ensure_raw_schema(conn)
    files, skipped = list_files(source_dir, table, dates, config)
    sources = {s.name: s for s in config.sources}
    report = new_report(table, source_name, source_dir, files, skipped, sources)
    undated = [f for f in files if f.partition_date is None]
    rf = raw_first(spec, source_name, files, undated)
    context = (sources, now, late_arrival_days, report, (timestamp_floor, max_amount))
    drop_temps(conn)
    with transaction(conn, rf is not None and bool(undated)):
        if undated:
            days = None if dates is None or rf is None else sorted(set(dates))
            _validate_files(conn, spec, undated, "_segflow_undated", *context, rf=rf, days=days)
        known = None  # undated raw-first, all days: their groups give the days (one scan)
        if dates is None and undated and rf is not None:
            known = rf.grouped(conn, lambda day: day is not None)
            dates = sorted({day for day, *_ in known})
        dates = sorted(
            set(dates if dates is not None else _found_dates(conn, files, bool(undated)))
        )
        for batch in _batches(dates, files):
            batch_files = [f for f in files if f.partition_date in batch]
            for day in batch:
                if not undated and not any(f.partition_date == day for f in batch_files):
                    report.warnings.append(f"{table}: no files for partition {day}")
            with transaction(conn, rf is not None and not undated):
                groups = None if known is None else [g for g in known if g[0] in batch]
                _load_batch(conn, spec, batch, batch_files, bool(undated), context, rf, groups)
        if undated:
            _load_unassigned(conn, spec, undated, now, source_name, report, rf)
        if rf is not None and undated:
            rf.untokenize(conn)
    finish_report(conn, table, dates, report, None if rf is None else rf.preview_bound())
    drop_temps(conn)
    report.elapsed_seconds = time.perf_counter() - t0
    return report


def raw_first(spec: TableSpec, source_name: str, files: list, undated: list) -> RawFirst | None:
    """Raw-first writes (raw_first.py) unless dated and undated files share the partitions."""
    return None if undated and len(undated) < len(files) else RawFirst(spec, source_name)


def _load_batch(
    conn, spec, batch, batch_files, undated: bool, context, rf, groups: list | None = None
) -> None:
    """Validate and write one batch of days, and count it into the report (`groups`: its
    `grouped_counts` when known already: writing the batch does not change them)."""
    _sources, now, late_days, report, _limits = context
    if rf is not None and not undated:
        rf.reset(conn)
    typed, where = _typed_batch(conn, spec, batch, batch_files, undated, *context, rf=rf)
    _replace_partitions(conn, spec, batch, typed, where, now, report.source_name, rf)
    if groups is None:
        groups = (
            grouped_counts(conn, typed, where)
            if rf is None
            else rf.grouped(conn, lambda day: not undated or day in batch)
        )
    report.partitions += partition_counts(conn, spec, typed, where, batch, late_days, groups)
    file_counts(conn, typed, where, report, groups, rf)
    if rf is not None and not undated:
        rf.untokenize(conn)


def _found_dates(conn, files: list, undated: bool) -> set[date]:
    """Every day the files hold (the dry run): dt= folders, and the dates undated rows got."""
    found = {f.partition_date for f in files if f.partition_date is not None}
    if undated:
        found |= {
            d
            for (d,) in conn.execute(
                "select distinct partition_date from "
                "_segflow_undated where partition_date is not null"
            ).fetchall()
        }
    return found


def _replace_partitions(conn, spec: TableSpec, batch, typed, where, now, source_name, rf) -> None:
    """Delete the batch's days from raw.<table> and raw.quarantine, insert the typed rows (good
    ones to the table, bad ones to quarantine), in one transaction. Raw-first (`rf`): the
    caller's transaction; the good rows are in raw already and stay."""
    with transaction(conn, rf is None):
        conn.execute(
            f"delete from raw.{spec.name} where list_contains($days, _partition_date)"
            + (f" and {rf.keep_old()}" if rf is not None else ""),
            {"days": batch},
        )
        conn.execute(
            "delete from raw.quarantine where table_name = $t and "
            "list_contains($days, partition_date)",
            {"t": spec.name, "days": batch},
        )
        if rf is None or rf.has_bad:  # raw-first without failing rows: nothing to insert
            insert_good_and_bad(conn, spec, typed, where, now, source_name, good=rf is None)


def _typed_batch(
    conn, spec, batch, batch_files, undated, sources, now, late_days, report, limits, rf=None
) -> tuple[str, str]:
    """The typed rows of one batch as (table, where): the batch's dated files validated into
    `_segflow_typed` plus the undated rows of its days; when it has no dated files, the undated
    rows are read where they are (no copy of what may be the whole export)."""
    if undated and not batch_files:
        days = ", ".join(f"date '{d.isoformat()}'" for d in batch)
        return "_segflow_undated", f"list_contains([{days}], partition_date)"
    _validate_files(
        conn, spec, batch_files, "_segflow_typed", sources, now, late_days, report, limits, rf=rf
    )
    if undated:
        conn.execute(
            "insert into _segflow_typed select * from _segflow_undated "
            "where list_contains($days, partition_date)",
            {"days": batch},
        )
    return "_segflow_typed", "true"


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
    rf: RawFirst | None = None,
    days: list[date] | None = None,
) -> None:
    """Stage `files`, one group per (source mapping, tabular or JSON), and write their typed,
    rule-checked rows to the temp table `target`; raw-first (`rf`): to raw, with `target` a view
    of them (undated rows: then only those of `days` or without a partition stay in raw, when
    `days` is given)."""
    groups: dict[tuple, list] = {}
    for f in files:
        groups.setdefault((f.source, f.format in ("csv", "parquet")), []).append(f)
    if not groups:
        groups[(None, False)] = []
    created = False

    def typed(build: Callable[..., str], stage: str, lean: bool = False) -> str:
        sql = build(stage, lean)
        if target == "_segflow_undated":  # an undated row's partition is its derived date
            sql = f"select * replace (derived_date as partition_date) from ({sql})"
        return sql

    def params_of(sql: str) -> dict:
        return params(sql, now, late_days, *limits)

    def write(build: Callable[..., str], stage: str) -> None:
        """The first query creates `target`, the others append (raw-first: into raw, by a lean
        query: without the detail and payload only failing rows carry)."""
        nonlocal created
        if rf is not None:
            sql = typed(build, stage, lean=True)
            rf.write(conn, sql, lambda s: typed(build, s), stage, params_of)
            created = True
            return
        sql = typed(build, stage)
        verb = f"insert into {target}" if created else f"create or replace temp table {target} as"
        register_zone_offsets(conn, sql)
        conn.execute(f"{verb} {sql}", params_of(sql))
        created = True

    for (name, tabular), group in groups.items():
        source = sources.get(name) if name else None
        read = _stage_and_write(conn, spec, group, source, tabular, write, created)
        if rf is not None:
            rf.create_view(conn, target)
        note_read(report, read)
        names = [f.relative for f in group]
        warnings, errors = empty_columns(conn, target, spec.name, source, names, rf)
        report.warnings += warnings
        report.mapping_errors += errors
    if rf is not None and days is not None:  # rows of other days: read, checked, not loaded
        rf.discard_other_days(conn, days)


def _stage_and_write(conn, spec, group, source, tabular: bool, write, created: bool):
    """Stage one group of files and write its typed rows with `write`."""
    create_stage(conn, "_segflow_stage")
    try:
        read = stage_files(conn, "_segflow_stage", spec, group, source)
        direct_rows = sum(t.num_rows for t in read.tables)
        if sum(read.rows_per_file.values()) > direct_rows or not (created or direct_rows):
            write(
                lambda stage, lean: typed_sql(spec, stage, source, tabular, lean=lean),
                "_segflow_stage_rows",
            )
        if direct_rows:  # CSV read by Arrow: typed straight from its columns
            cols = direct_columns(read)
            write(
                lambda stage, lean: typed_sql(
                    spec, stage, source, True, cols, read.padded, lean, read.cased
                ),
                "_segflow_stage_cols",
            )
    except BaseException:
        # inside a failed transaction nothing runs until its rollback, which drops the stage
        with suppress(duckdb.TransactionException):
            drop_stage(conn, "_segflow_stage")
        raise
    drop_stage(conn, "_segflow_stage")
    return read


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


def _load_unassigned(conn, spec: TableSpec, undated, now, source_name, report, rf) -> None:
    """Undated rows whose date column is unusable cannot be placed in a partition: quarantine
    them with a null partition (replaced on every load that reads those files). Raw-first
    (`rf`): in the caller's transaction; such rows are all in its bad table."""
    names = [f.relative for f in undated]
    with transaction(conn, rf is None):
        conn.execute(
            "delete from raw.quarantine where table_name = $t and partition_date is null "
            "and list_contains($files, source_file)",
            {"t": spec.name, "files": names},
        )
        rows = "_segflow_undated" if rf is None else rf.bad_table if rf.has_bad else None
        if rows is not None:
            conn.execute(
                f"""update {rows} set
                reason_code = coalesce(reason_code, 'wrong_type'),
                reason_detail = coalesce(reason_detail, $d) where partition_date is null""",
                {
                    "d": f"undated file: no usable {' / '.join(spec.date_columns)} to assign a "
                    "partition"
                },
            )
            insert_good_and_bad(
                conn,
                spec,
                "_segflow_undated",
                "partition_date is null",
                now,
                source_name,
                good=rf is None,
            )
    groups = (
        grouped_counts(conn, "_segflow_undated", "partition_date is null")
        if rf is None
        else rf.grouped(conn, lambda day: day is None)
    )
    for _day, file, code, *_, n in groups:
        unassigned = report.unassigned.setdefault(file, {})
        unassigned[code] = unassigned.get(code, 0) + n
    file_counts(conn, "_segflow_undated", "partition_date is null", report, groups, rf)
    (counts,) = partition_counts(
        conn, spec, "_segflow_undated", "partition_date is null", [None], 0, groups
    )
    if counts.rows_read:
        report.partitions.append(counts)
