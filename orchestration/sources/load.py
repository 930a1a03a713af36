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
`amount_out_of_range` (> MAX_AMOUNT), `invalid_value` (invoice currency / status outside
ACCEPTED_VALUES, period_end before period_start; NaN/Infinity amounts are `wrong_type`), `timestamp_too_old` (< 2000-01-01),
`timestamp_in_future` (> now + 15 min), `outside_late_window` (event dated more than
`late_arrival_days` before its dt= partition).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from orchestration import tracking_plan
from orchestration.sources.files import (
    MAX_FIELD_BYTES,
    SourceError,
    TableSpec,
    create_stage,
    drop_stage,
    list_files,
    stage_files,
    table_spec,
)

__all__ = ["RAW_TABLES", "LoadReport", "PartitionCounts", "ReplayReport", "SourceError",
           "ensure_raw_schema", "load_partitions", "replay_quarantine"]

RAW_TABLES = ("crm_contacts", "events", "billing_invoices")
EVENT_TYPES = ("track", "identify", "page")
MAX_AMOUNT = 1_000_000.0
MIN_TIMESTAMP = datetime(2000, 1, 1)
FUTURE_TOLERANCE = timedelta(minutes=15)
_SQL_TYPES = {"str": "VARCHAR", "ts": "TIMESTAMP", "num": "DOUBLE", "json": "JSON"}
_KIND_TEXT = {"ts": "a timestamp (ISO 8601)", "num": "a number", "json": "a JSON object"}
_TZ_SUFFIX = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$"
_META = ("_partition_date DATE, _loaded_at TIMESTAMP, _source VARCHAR, _source_file VARCHAR, "
         "_source_line BIGINT")


@dataclass
class PartitionCounts:
    partition_date: date | None       # None: undated rows whose date column is unusable
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    duplicate_keys: int = 0               # extra rows sharing a message_id/invoice_id in the day
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
        return [{"partition_date": str(p.partition_date), "rows_read": p.rows_read,
                 "rows_loaded": p.rows_loaded, "rows_quarantined": p.rows_quarantined,
                 "quarantined_by_reason": ", ".join(f"{k}={v}" for k, v in
                                                    sorted(p.quarantined_by_reason.items())),
                 "duplicate_keys": p.duplicate_keys, "files": len(p.files)}
                for p in self.partitions]


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
        cols = ", ".join(f'"{c}" {_SQL_TYPES[k] if k != "json" else "VARCHAR"}' for c, k in spec.columns)
        conn.execute(f"create table if not exists raw.{name} ({cols}, {_META})")
    conn.execute("""create table if not exists raw.quarantine (table_name VARCHAR,
        partition_date DATE, source_file VARCHAR, source_line BIGINT, payload VARCHAR,
        reason_code VARCHAR, reason_detail VARCHAR, quarantined_at TIMESTAMP,
        replayed_at TIMESTAMP)""")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _transform_spec(spec: TableSpec) -> str:
    """`json_transform` spec: every accepted input key of the contract, as text (JSON columns
    as JSON text). One parse per row yields all fields; keys match case-sensitively."""
    fields = {alias: "JSON" if kind == "json" else "VARCHAR"
              for col, kind in spec.columns for alias in spec.aliases(col)}
    return json.dumps(fields).replace("'", "''")


def _field(alias: str) -> str:
    return 'v."' + alias.replace('"', '""') + '"'


def _typed_sql(spec: TableSpec, stage: str) -> str:
    """SELECT over a stage table: contract columns typed, plus reason_code/reason_detail/
    derived_date, and the payload of quarantined rows only. Each payload is parsed once
    (`json_transform`; a failure means a malformed line). Parameters: $now, $late_days,
    $known_events, $event_types."""
    raw_exprs = []
    for col, kind in spec.columns:
        refs = [_field(a) for a in spec.aliases(col)]
        joined = f"coalesce({', '.join(refs)})" if len(refs) > 1 else refs[0]
        raw_exprs.append(joined if kind == "json" else f"nullif(trim({joined}), '')")
    typed, checks = [], []
    for col, kind in spec.columns:
        r = f'"raw_{col}"'
        if kind == "str":
            typed.append(f'{r} as "{col}"')
        elif kind == "num":
            # NaN / Infinity are not amounts: they become wrong_type
            typed.append(f'case when isfinite(try_cast({r} as double)) '
                         f'then try_cast({r} as double) end as "{col}"')
        elif kind == "ts":
            typed.append(f"""case when {r} is null then null
                when ends_with({r}, 'Z') then try_cast({r} as timestamp)  -- UTC: fast path
                when regexp_matches({r}, '{_TZ_SUFFIX}')
                  then timezone('UTC', try_cast({r} as timestamptz))
                else try_cast({r} as timestamp) end as "{col}\"""")
        else:  # minified JSON text from json_transform; a string holding an object is unwrapped
            typed.append(f"""case when starts_with({r}, '{{') then {r}::varchar
                when starts_with({r}, '"') and json_valid({r} ->> '$')
                     and json_type(({r} ->> '$')::json) = 'OBJECT' then {r} ->> '$' end
                as "{col}\"""")
    # reason rules in priority order: (condition, code, detail)
    checks.append(("pre_reason is not null", "pre_reason", "pre_detail"))
    checks.append(("v is null or not starts_with(ltrim(payload), '{')", "'malformed_json'",
                   "case when json_valid(payload) then 'line is JSON ' || json_type(payload) || "
                   "', expected an object' else 'line is not valid JSON (truncated or malformed)' end"))
    # a column can only be too large when the whole payload is: one cheap test for most rows
    sizes = {col: f'strlen("raw_{col}"::varchar)' for col in spec.column_names}
    checks.append((f"strlen(payload) > {MAX_FIELD_BYTES} and greatest({', '.join(sizes.values())})"
                   f" > {MAX_FIELD_BYTES}", "'value_too_large'",
                   "case " + " ".join(f"when {size} > {MAX_FIELD_BYTES} then format('column {col} "
                                      f"is {{}} bytes; limit is {MAX_FIELD_BYTES}', {size})"
                                      for col, size in sizes.items()) + " end"))
    for key in spec.keys:
        checks.append((f'"{key}" is null', "'null_key'",
                       f"'{key} is missing or empty (it is a key of {spec.name})'"))
    if spec.name == "events":
        checks.append(('"user_id" is null and "anonymous_id" is null', "'null_key'",
                       "'both user_id and anonymous_id are missing or empty'"))
    for col in spec.required:
        if col not in spec.keys:
            checks.append((f'"raw_{col}" is null', "'missing_required_column'",
                           f"'field {col} is missing or empty (required: {', '.join(spec.required)})'"))
    for col, kind in spec.columns:
        if kind in _KIND_TEXT:
            checks.append((f'"raw_{col}" is not null and "{col}" is null', "'wrong_type'",
                           f"format('column {col}: expected {_KIND_TEXT[kind]}, found {{}}', "
                           f'left("raw_{col}"::varchar, 100))'))
    if spec.name == "events":
        checks.append(("not list_contains($event_types, \"type\")", "'unknown_event'",
                       "format('type {} is not one of track, identify, page', \"type\")"))
        checks.append(("\"type\" = 'track' and (\"event\" is null or not list_contains($known_events, \"event\"))",
                       "'unknown_event'",
                       "format('track event {} is not in the tracking plan "
                       "(dbt_project.yml vars.tracking_plan)', coalesce('''' || \"event\" || '''', 'null'))"))
    for col, allowed in _accepted_values(spec).items():
        listed = "[" + ", ".join(f"'{v}'" for v in allowed) + "]"
        checks.append((f'"{col}" is not null and not list_contains({listed}, "{col}")',
                       "'invalid_value'",
                       f"format('{col} {{}} is not one of {', '.join(allowed)}', \"{col}\")"))
    if spec.name == "billing_invoices":
        checks.append(('"period_end" < "period_start"', "'invalid_value'",
                       "format('period_end {} is before period_start {}', \"period_end\", "
                       "\"period_start\")"))
        checks.append(('"amount" < 0', "'negative_amount'",
                       "format('amount {} is negative', \"amount\")"))
        checks.append((f'not ("amount" <= {MAX_AMOUNT})', "'amount_out_of_range'",
                       f"format('amount {{}} is above {MAX_AMOUNT:.0f}', \"amount\")"))
    for col, kind in spec.columns:
        if kind == "ts":
            checks.append((f"\"{col}\" < TIMESTAMP '{MIN_TIMESTAMP:%Y-%m-%d}'", "'timestamp_too_old'",
                           f"format('{col} {{}} is before {MIN_TIMESTAMP:%Y-%m-%d}', \"{col}\")"))
    for col in spec.future_checked:
        checks.append((f'"{col}" > $now::timestamp + INTERVAL {int(FUTURE_TOLERANCE.total_seconds())} SECOND',
                       "'timestamp_in_future'",
                       f"format('{col} {{}} is in the future (now {{}})', \"{col}\", $now::timestamp)"))
    if spec.name == "events":
        checks.append(("partition_date is not null and "
                       "\"timestamp\"::date < partition_date - $late_days::integer",
                       "'outside_late_window'",
                       "format('timestamp {} is more than {} days before partition {}', "
                       "\"timestamp\", $late_days, partition_date)"))
    # the conditions are evaluated once: `rule` is the number of the first that holds
    rule = "case " + " ".join(f"when {c} then {i}" for i, (c, _, _) in enumerate(checks)) + " end"
    code = "case when rule is not null then case rule " + " ".join(
        f"when {i} then {k}" for i, (_, k, _) in enumerate(checks)) + " end end"
    detail = "case when rule is not null then case rule " + " ".join(
        f"when {i} then {d}" for i, (_, _, d) in enumerate(checks)) + " end end"
    raw_select = ", ".join(f'{e} as "raw_{c}"' for (c, _), e in zip(spec.columns, raw_exprs, strict=True))
    derived = "coalesce(" + ", ".join(f'"{c}"' for c in spec.date_columns) + ")::date"
    return f"""
with x as (
  select *, case when pre_reason is null
                 then try(json_transform(payload, '{_transform_spec(spec)}')) end as v
  from {stage}
), r as (select *, {raw_select} from x),
t as (select *, {", ".join(typed)} from r),
c as (select *, {rule} as rule from t)
select source_file, source_line, partition_date, quarantine_rowid,
       {", ".join(f'"{c}"' for c in spec.column_names)},
       {code} as reason_code, {detail} as reason_detail, {derived} as derived_date,
       case when rule is not null then payload end as payload
from c"""


ACCEPTED_VALUES = {
    # docs/contracts.md: accepted values a raw row must have (null is allowed here; required
    # columns are checked separately). Plans come from the tracking plan.
    "billing_invoices": {"currency": ("USD", "EUR", "GBP"),
                         "status": ("paid", "open", "void", "refunded")},
}


def _accepted_values(spec: TableSpec) -> dict[str, tuple[str, ...]]:
    return ACCEPTED_VALUES.get(spec.name, {})


def _params(sql: str, now: datetime, late_days: int) -> dict:
    """The named parameters `sql` uses (DuckDB rejects unused ones)."""
    plan = tracking_plan.load()
    values = {"now": now, "late_days": late_days, "known_events": sorted(plan.known_events),
              "event_types": list(EVENT_TYPES)}
    return {k: v for k, v in values.items() if f"${k}" in sql}


def _insert_good_and_bad(conn, spec: TableSpec, typed: str, where: str, now: datetime,
                         source_name: str) -> None:
    """Good rows keep the typed table's order (files sorted, lines ascending): no sort."""
    cols = ", ".join(f'"{c}"' for c in spec.column_names)
    conn.execute(f"""insert into raw.{spec.name}
        select {cols}, partition_date, $now, $source, source_file, source_line
        from {typed} where reason_code is null and {where}""", {"now": now, "source": source_name})
    conn.execute(f"""insert into raw.quarantine
        select '{spec.name}', partition_date, source_file, source_line,
               rtrim(payload, chr(10) || chr(13)), reason_code,
               reason_detail, $now, null
        from {typed} where reason_code is not null and {where}
        order by source_file, source_line""", {"now": now})


def _counts(conn, spec: TableSpec, typed: str, where: str, days: list[date | None],
            late_days: int) -> list[PartitionCounts]:
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
        for day, n in conn.execute(f"""select partition_date, count("{key}") - count(distinct "{key}")
                from {typed} where reason_code is null and partition_date is not null and {where}
                group by all""").fetchall():
            counts[day].duplicate_keys = n
        window = late_days + 2
        for day, n in conn.execute(f"""select t.partition_date, count(distinct t."{key}")
                from {typed} t join (select "{key}", _partition_date from raw.{spec.name}
                                     where _partition_date between $lo and $hi) r
                  on r."{key}" = t."{key}" and r._partition_date <> t.partition_date
                 and r._partition_date between t.partition_date - $w::integer
                                           and t.partition_date + $w::integer
                where t.reason_code is null and t.partition_date is not null and {where}
                group by all""",
                {"lo": min(dated) - timedelta(days=window), "hi": max(dated) + timedelta(days=window),
                 "w": window}).fetchall():
            counts[day].duplicate_keys_other_partitions = n
    return list(counts.values())


def load_partitions(conn: duckdb.DuckDBPyConnection, table: str, dates: list[date],
                    source_dir: Path, source_name: str, late_arrival_days: int,
                    now: datetime | None = None) -> LoadReport:
    """Load `table` for `dates` from `source_dir` (landing layout) into `raw.<table>`.

    Days are processed in batches of up to BATCH_BYTES of input; each batch is one transaction
    (delete its partitions, insert good and quarantined rows). Raises `SourceError` for an
    unknown table, a missing source folder or an unreadable file; batches already committed
    stay, the failing batch writes nothing."""
    t0 = time.perf_counter()
    spec = table_spec(table)
    now = now or _utcnow()
    dates = sorted(set(dates))
    source_dir = Path(source_dir)
    ensure_raw_schema(conn)
    files, skipped = list_files(source_dir, table, dates)
    report = LoadReport(table, source_name, source_dir, [], pd.DataFrame(), pd.DataFrame())
    report.warnings += [f"{table}: skipped {s} (not a dt=YYYY-MM-DD folder or supported file)"
                        for s in skipped]
    undated = [f for f in files if f.partition_date is None]
    sql = _typed_sql(spec, "_segflow_stage_rows")
    params = _params(sql, now, late_arrival_days)
    if undated:
        _validate_files(conn, spec, undated, "_segflow_undated", sql, params, report)
        conn.execute("update _segflow_undated set partition_date = derived_date")
    for batch in _batches(dates, files):
        batch_files = [f for f in files if f.partition_date in batch]
        for day in batch:
            if not undated and not any(f.partition_date == day for f in batch_files):
                report.warnings.append(f"{table}: no files for partition {day}")
        _validate_files(conn, spec, batch_files, "_segflow_typed", sql, params, report)
        if undated:
            conn.execute("insert into _segflow_typed select * from _segflow_undated "
                         "where list_contains($days, partition_date)", {"days": batch})
        conn.execute("begin transaction")
        try:
            conn.execute(f"delete from raw.{table} where list_contains($days, _partition_date)",
                         {"days": batch})
            conn.execute("delete from raw.quarantine where table_name = $t and "
                         "list_contains($days, partition_date)", {"t": table, "days": batch})
            _insert_good_and_bad(conn, spec, "_segflow_typed", "true", now, source_name)
            conn.execute("commit")
        except Exception:
            conn.execute("rollback")
            raise
        report.partitions += _counts(conn, spec, "_segflow_typed", "true", batch,
                                     late_arrival_days)
    if undated:
        _load_unassigned(conn, spec, undated, now, source_name, report)
    _finish(conn, table, dates, report)
    for name in ("_segflow_typed", "_segflow_undated"):
        conn.execute(f"drop table if exists {name}")
    report.elapsed_seconds = time.perf_counter() - t0
    return report


def _validate_files(conn, spec: TableSpec, files: list, target: str, sql: str, params: dict,
                    report: LoadReport) -> None:
    """Stage `files` and write their typed, rule-checked rows to the temp table `target`."""
    create_stage(conn, "_segflow_stage")
    try:
        _note(report, stage_files(conn, "_segflow_stage", spec, files))
        conn.execute(f"create or replace temp table {target} as {sql}", params)
    finally:
        drop_stage(conn, "_segflow_stage")


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
        conn.execute("delete from raw.quarantine where table_name = $t and partition_date is null "
                     "and list_contains($files, source_file)", {"t": spec.name, "files": names})
        conn.execute("""update _segflow_undated set
            reason_code = coalesce(reason_code, 'wrong_type'),
            reason_detail = coalesce(reason_detail, $d) where partition_date is null""",
                     {"d": f"undated file: no usable {' / '.join(spec.date_columns)} to assign a partition"})
        _insert_good_and_bad(conn, spec, "_segflow_undated", "partition_date is null", now, source_name)
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    counts, = _counts(conn, spec, "_segflow_undated", "partition_date is null", [None], 0)
    if counts.rows_read:
        report.partitions.append(counts)


def _note(report: LoadReport, read) -> None:
    report.extra_columns.update(read.extra_columns)
    report.empty_files += read.empty_files
    for rel, cols in read.extra_columns.items():
        report.warnings.append(f"{rel}: extra columns outside the contract kept only in the "
                               f"payload: {', '.join(cols)}")
    report.warnings += [f"{rel}: empty file (no rows)" for rel in read.empty_files]


def _finish(conn, table: str, dates: list[date], report: LoadReport) -> None:
    report.preview = conn.execute(
        f"""select * from raw.{table} where list_contains($d, _partition_date)
            order by _partition_date, _source_file, _source_line limit 20""", {"d": dates}).df()
    report.quarantine_preview = conn.execute(
        """select * from raw.quarantine where table_name = $t
             and (list_contains($d, partition_date) or partition_date is null)
           order by partition_date, source_file, source_line limit 20""",
        {"t": table, "d": dates}).df()


def replay_quarantine(conn: duckdb.DuckDBPyConnection, table: str, source_name: str,
                      late_arrival_days: int, partition_dates: list[date] | None = None,
                      now: datetime | None = None) -> ReplayReport:
    """Re-validate not-yet-replayed quarantined rows of `table` (after their payload was fixed
    in place, e.g. `update raw.quarantine set payload = ...`); rows that now pass are inserted
    into `raw.<table>` and marked with `replayed_at`. Rows still failing stay as they are."""
    spec = table_spec(table)
    now = now or _utcnow()
    ensure_raw_schema(conn)
    create_stage(conn, "_segflow_replay")
    where = "table_name = $t and replayed_at is null"
    params: dict = {"t": table}
    if partition_dates is not None:
        where += " and list_contains($d, partition_date)"
        params["d"] = sorted(set(partition_dates))
    conn.execute(f"""insert into _segflow_replay
        select source_file, source_line, partition_date, payload,
          case when contains(payload, chr(65533)) then 'bad_encoding' end,
          case when contains(payload, chr(65533))
               then 'payload still holds undecodable bytes (U+FFFD)' end, rowid
        from raw.quarantine where {where}""", params)
    sql = _typed_sql(spec, "_segflow_replay_rows")
    conn.execute(f"create or replace temp table _segflow_replay_typed as {sql}",
                 _params(sql, now, late_arrival_days))
    rows = conn.execute("select reason_code, count(*) from _segflow_replay_typed group by all").fetchall()
    conn.execute("begin transaction")
    try:
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        conn.execute(f"""insert into raw.{table}
            select {cols}, partition_date, $now, $source, source_file, source_line
            from _segflow_replay_typed where reason_code is null""",
                     {"now": now, "source": source_name})
        conn.execute("""update raw.quarantine set replayed_at = $now where rowid in
            (select quarantine_rowid from _segflow_replay_typed where reason_code is null)""",
                     {"now": now})
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    drop_stage(conn, "_segflow_replay")
    conn.execute("drop table if exists _segflow_replay_typed")
    return ReplayReport(table, sum(n for _, n in rows),
                        sum(n for code, n in rows if code is None),
                        {code: n for code, n in rows if code is not None})
