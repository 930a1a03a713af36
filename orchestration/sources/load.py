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
`amount_out_of_range` (> SEGFLOW_DQ_MAX_AMOUNT), `invalid_value` (invoice currency / status outside
the contract's accepted values, period_end before period_start; NaN/Infinity amounts are `wrong_type`), `timestamp_too_old` (before SEGFLOW_TIMESTAMP_FLOOR, when set),
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

from contracts import tracking_plan
from contracts.raw import (
    EVENT_TYPES,
    FUTURE_TOLERANCE_MINUTES,
    MAX_AMOUNT,
    MAX_FIELD_BYTES,
    PLAUSIBLE_YEARS,
    RAW,
    RAW_TABLES,
    REVENUE_STATUSES,
)
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
    to_snake,
)
from orchestration.sources.mappings import (
    DEFAULT_CASE,
    DEFAULT_VALUE_MAPS,
    ColumnRule,
    SourceMapping,
    SourcesConfig,
    default_config,
    default_source,
    glob_regex,
    matches,
)

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

FUTURE_TOLERANCE = timedelta(minutes=FUTURE_TOLERANCE_MINUTES)
_SQL_TYPES = {"str": "VARCHAR", "ts": "TIMESTAMP", "num": "DOUBLE", "json": "JSON"}
_KIND_TEXT = {"ts": "a timestamp (ISO 8601)", "num": "a number", "json": "a JSON object"}
_TZ_SUFFIX = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$"
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


def _transform_spec(spec: TableSpec) -> str:
    """`json_transform` spec: every accepted input key of the contract, as text (JSON columns
    as JSON text). One parse per row yields all fields; keys match case-sensitively."""
    fields = {
        alias: "JSON" if kind == "json" else "VARCHAR"
        for col, kind in spec.columns
        for alias in spec.aliases(col)
    }
    return json.dumps(fields).replace("'", "''")


def _field(alias: str) -> str:
    return 'v."' + alias.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_path(path: tuple[str, ...]) -> str:
    return "$" + "".join('."' + p.replace('"', '\\"') + '"' for p in path)


def _ts_sql(r: str, formats: tuple[str, ...], zone: str) -> str:
    """Text -> naive UTC timestamp: ISO (with or without a zone; zoneless read in `zone`),
    epoch seconds / ms / us, or strptime patterns; formats tried in order."""

    def local(expr: str) -> str:
        return expr if zone == "UTC" else f"timezone('UTC', timezone({_sql_str(zone)}, {expr}))"

    parts = []
    for fmt in formats or ("iso",):
        if fmt == "iso":
            parts.append(f"""case when ends_with({r}, 'Z') then try_cast({r} as timestamp)
                when length({r}) >= 19 and regexp_matches({r}, '{_TZ_SUFFIX}')
                  then timezone('UTC', try_cast({r} as timestamptz))
                else {local(f"try_cast({r} as timestamp)")} end""")
        elif fmt in EPOCH_SCALE:
            parts.append(
                f"case when isfinite(try_cast({r} as double)) then make_timestamp("
                f"cast(round(try_cast({r} as double) * {EPOCH_SCALE[fmt]}) as bigint)) end"
            )
        elif "%z" in fmt or "%Z" in fmt:
            parts.append(f"timezone('UTC', try_strptime({r}, {_sql_str(fmt)}))")
        else:
            parts.append(local(f"try_strptime({r}, {_sql_str(fmt)})"))
    inner = parts[0] if len(parts) == 1 else "coalesce(" + ", ".join(parts) + ")"
    return f"case when {r} is null then null else {inner} end"


EPOCH_SCALE = {"epoch_s": "1e6", "epoch_ms": "1e3", "epoch_us": "1"}
# Stripe: amounts in the minor unit, except these zero-decimal currencies
# (https://docs.stripe.com/currencies#zero-decimal)
ZERO_DECIMAL = (
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
)


class _Compiler:
    """Column expressions of one source mapping over the staged payloads."""

    def __init__(
        self, spec: TableSpec, source: SourceMapping, tabular: bool, direct: list[str] | None
    ) -> None:
        self.spec, self.source, self.tabular = spec, source, tabular or direct is not None
        self.direct = None if direct is None else set(direct)  # columns of a direct stage
        self.paths: list[str] = []
        self.needs_map = False

    def _col(self, path: tuple[str, ...]) -> str | None:
        name = to_snake(path[0])
        return '"d_' + name + '"' if name in self.direct else None

    def _ref(self, path: tuple[str, ...]) -> str:
        if self.direct is not None:
            col = self._col(path)
            if col is None:
                return "null::json"
            return (
                f"try({col}::json)"
                if len(path) == 1
                else (f"json_extract({col}, {_sql_str(_json_path(path[1:]))})")
            )
        if self.tabular:
            path = (to_snake(path[0]), *path[1:])
        key = _json_path(path)
        if key not in self.paths:
            self.paths.append(key)
        return f"v[{self.paths.index(key) + 1}]"

    def text(self, path: tuple[str, ...]) -> str:
        if self.direct is not None and len(path) == 1:
            col = self._col(path)
            return f"nullif(trim({col}), '')" if col else "null::varchar"
        nested = f"nullif(trim({self._ref(path)} ->> '$'), '')"
        if self.tabular and len(path) > 1:
            # a nested field flattened into a CSV / parquet header: `status_transitions.paid_at`
            # (json_normalize) or `status_transitions_paid_at` both read as the snake name
            flat = self.text(("_".join(to_snake(p) for p in path),))
            return f"coalesce({nested}, {flat})"
        return nested

    def json(self, path: tuple[str, ...]) -> str:
        if self.direct is not None and len(path) == 1:
            col = self._col(path)
            return f"nullif(trim({col}), '')" if col else "null::varchar"
        return f"nullif({self._ref(path)}::varchar, 'null')"

    def _names(self, names) -> list[str]:
        return [to_snake(n) if self.tabular else n for n in names]

    def base(self, rule: ColumnRule, kind: str) -> str:
        if rule.const is not None:
            return _sql_str(rule.const)
        if rule.file_name:
            whens = " ".join(
                f"when regexp_matches(source_file, {_sql_str(glob_regex('**/' + g if '/' not in g else g).pattern)}) "
                f"then {_sql_str(v)}"
                for g, v in rule.file_name
            )
            return f"case {whens} end"
        if rule.merge:
            objs = [
                f"coalesce(case when json_type({self._ref(p)}) = 'OBJECT' then {self._ref(p)} end, '{{}}')"
                for p in rule.paths
            ]
            return (
                f"json_merge_patch({', '.join(objs)})::varchar"
                if len(objs) > 1
                else objs[0] + "::varchar"
            )
        if rule.rest is not None:
            self.needs_map = True
            excl = "[" + ", ".join(_sql_str(n) for n in self._names(rule.rest)) + "]"
            prefixes = (
                " or ".join(
                    f"starts_with(e.key, {_sql_str(p)})"
                    for p in self._names(rule.rest_exclude_prefixes)
                )
                or "false"
            )
            return (
                f"to_json(map_from_entries(list_filter(map_entries(m), lambda e: not "
                f"list_contains({excl}, e.key) and not ({prefixes}) and "
                f"e.value::varchar <> 'null')))::varchar"
            )
        if rule.prefix:
            self.needs_map = True
            prefix = self._names([rule.prefix])[0] if not self.tabular else rule.prefix
            n = len(prefix) + 1
            return (
                f"to_json(map_from_entries(list_transform(list_filter(map_entries(m), lambda e: "
                f"starts_with(e.key, {_sql_str(prefix)}) and e.value::varchar <> 'null'), "
                f"lambda e: struct_pack(key := substr(e.key, {n}), value := e.value))))::varchar"
            )
        if not rule.paths:
            return "null::varchar"
        refs = [self.json(p) if kind == "json" else self.text(p) for p in rule.paths]
        return refs[0] if len(refs) == 1 else f"coalesce({', '.join(refs)})"

    def post(self, col: str, rule: ColumnRule | None, expr: str, currency: str | None) -> str:
        kind = dict(self.spec.columns)[col]
        if kind == "json":
            return expr
        if rule is not None:
            if rule.case:
                expr = f"{rule.case}({expr})"
            if rule.value_map:
                whens = " ".join(
                    f"when {_sql_str(k)} then {_sql_str(v)}" for k, v in rule.value_map
                )
                other = _sql_str(rule.default) if rule.default is not None else expr
                expr = f"case {expr} {whens} else {other} end"
            elif rule.default is not None:
                expr = f"coalesce({expr}, {_sql_str(rule.default)})"
            if rule.divide_by:
                expr = (
                    f"coalesce(cast(try_cast({expr} as double) / {rule.divide_by} as varchar), "
                    f"{expr})"
                )
            if rule.minor_units:
                cur = currency or "null"
                zero = "[" + ", ".join(_sql_str(z) for z in ZERO_DECIMAL) + "]"
                expr = (
                    f"coalesce(cast(try_cast({expr} as double) / case when "
                    f"list_contains({zero}, lower({cur})) then 1 else 100 end as varchar), {expr})"
                )
            if rule.size_bucket:
                n = f"try_cast({expr} as double)"
                expr = (
                    f"case when {n} is null then {expr} when {n} <= 10 then '1-10' "
                    f"when {n} <= 50 then '11-50' when {n} <= 200 then '51-200' "
                    f"when {n} <= 1000 then '201-1000' else '1000+' end"
                )
        case = DEFAULT_CASE.get(self.spec.name, {}).get(col)
        if case and not (rule is not None and rule.case):
            expr = f"{case}({expr})"
        for target, values in DEFAULT_VALUE_MAPS.get(self.spec.name, {}).items():
            if target == col:
                whens = " ".join(
                    f"when {_sql_str(k)} then {_sql_str(v)}" for k, v in values.items()
                )
                expr = f"case {expr} {whens} else {expr} end"
        if col in self.source.normalize_ids:
            expr = (
                f"case when contains({expr}, '.') then regexp_replace({expr}, "
                f"'^(-?[0-9]+)\\.0*$', '\\1') else {expr} end"
            )
        return expr


def _typed_sql(
    spec: TableSpec,
    stage: str,
    source: SourceMapping | None = None,
    tabular: bool = False,
    direct: list[str] | None = None,
) -> str:
    """SELECT over a stage table: contract columns typed, plus reason_code/reason_detail/
    derived_date/_identity, and the payload of quarantined rows only. Each payload is parsed
    once (`json_transform`, or `json_extract` of every mapped path; a failure means a malformed
    line). Parameters: $now, $late_days, $known_events, $event_types.
    `direct`: the stage has these (snake_case, text) columns instead of a JSON payload (CSV
    read by Arrow); the payload of quarantined rows is built from them."""
    source = source or default_source(spec.name)
    comp = _Compiler(spec, source, tabular, direct)
    base: dict[str, str] = {}
    for col, kind in spec.columns:
        if source.default_columns and direct is not None:
            names = dict.fromkeys(to_snake(a) for a in spec.aliases(col))
            refs = [comp.text((n,)) for n in names if n in comp.direct]
            base[col] = (
                "null::varchar"
                if not refs
                else refs[0]
                if len(refs) == 1
                else f"coalesce({', '.join(refs)})"
            )
        elif source.default_columns:
            refs = [_field(a) for a in spec.aliases(col)]
            joined = f"coalesce({', '.join(refs)})" if len(refs) > 1 else refs[0]
            base[col] = joined if kind == "json" else f"nullif(trim({joined}), '')"
        elif col in source.columns:
            base[col] = comp.base(source.columns[col], kind)
        else:  # not listed under `columns:`: a header / key of the same name, never nulled
            names = dict.fromkeys(to_snake(a) if comp.tabular else a for a in spec.aliases(col))
            if direct is not None:
                names = {n: None for n in names if n in comp.direct}
            refs = [comp.json((n,)) if kind == "json" else comp.text((n,)) for n in names]
            base[col] = _coalesce(refs) if refs else "null::varchar"
    fallbacks = {
        col: _coalesce([comp.text(p) for p in rule.fallback])
        for col, rule in source.columns.items()
        if rule.fallback
    }
    ident = source.identity
    id_exprs = {}
    if ident.external_id:
        id_exprs["_ext"] = " , ".join(comp.text(p) for p in ident.external_id)
        if len(ident.external_id) > 1:
            id_exprs["_ext"] = f"coalesce({id_exprs['_ext']})"
    if ident.match_by == "email":
        if ident.email:
            refs = [comp.text(p) for p in ident.email]
            id_exprs["_email"] = refs[0] if len(refs) == 1 else f"coalesce({', '.join(refs)})"
        else:
            id_exprs["_email"] = '"b_email"'
    if direct is not None:
        parse = "null::varchar[]"
    elif source.default_columns:
        parse = f"try(json_transform(payload, '{_transform_spec(spec)}'))"
    else:
        paths = comp.paths or ["$"]
        parse = f"try(json_extract(payload, [{', '.join(_sql_str(p) for p in paths)}]))"
    payload = "payload"
    if direct is not None:  # the row as a JSON object, as the line-by-line reader writes it
        payload = (
            "to_json(struct_pack("
            + ", ".join(
                f'"{n}" := case when trim("d_{n}") = \'\' then null else "d_{n}" end'
                for n in direct
            )
            + "))::varchar"
        )
    map_expr = (
        (
            f", case when pre_reason is null then try(json_transform({payload}, "
            "'\"MAP(VARCHAR, JSON)\"')) end as m"
        )
        if comp.needs_map
        else ""
    )
    currency = '"b_currency"' if "currency" in base else None
    post = {
        col: comp.post(col, source.columns.get(col), f'"b_{col}"', currency)
        for col, _ in spec.columns
    }
    if ident.match_by or ident.external_id:
        chain = [
            e
            for e in (
                '"_ext"' if ident.external_id else None,
                "_idm.id_user" if ident.match_by else None,
            )
            if e
        ]
        post["user_id"] = f"coalesce({', '.join(chain)}, {post['user_id']})"
        status = (
            "case "
            + ("when \"_ext\" is not null then 'external_id' " if ident.external_id else "")
            + ("when _idm.id_user is not null then 'email' " if ident.match_by else "")
            + "else 'unmatched' end"
        )
        join = (
            "left join (select lower(trim(coalesce(json_extract_string(properties, '$.email'), "
            "json_extract_string(properties, '$.\"$email\"')))) as id_email, "
            'arg_max(user_id, "timestamp") as id_user from raw.events '
            "where type = 'identify' and user_id is not null group by 1) _idm "
            'on _idm.id_email = lower(trim(r0."_email"))'
            if ident.match_by
            else ""
        )
    else:
        status, join = "null::varchar", ""
    fallback_used = _apply_fallbacks(spec, post, fallbacks)
    base_select = ", ".join(
        [f'{e} as "b_{c}"' for c, e in base.items()]
        + [f'{e} as "f_{c}"' for c, e in fallbacks.items()]
    )
    id_select = "".join(f', {e} as "{k}"' for k, e in id_exprs.items())
    raw_select = ", ".join(f'{post[c]} as "raw_{c}"' for c, _ in spec.columns)
    typed, checks = [], []
    for col, kind in spec.columns:
        r = f'"raw_{col}"'
        if kind == "str":
            typed.append(f'{r} as "{col}"')
        elif kind == "num":
            # NaN / Infinity are not amounts: they become wrong_type
            typed.append(
                f"case when isfinite(try_cast({r} as double)) "
                f'then try_cast({r} as double) end as "{col}"'
            )
        elif kind == "ts":
            rule = source.columns.get(col)
            typed.append(f'{_ts_sql(r, rule.formats if rule else (), source.time_zone)} as "{col}"')
        else:  # minified JSON text; a string holding an object is unwrapped
            typed.append(f"""case when starts_with({r}, '{{') then {r}::varchar
                when starts_with({r}, '"') and json_valid({r} ->> '$')
                     and json_type(({r} ->> '$')::json) = 'OBJECT' then {r} ->> '$' end
                as "{col}\"""")
    # reason rules in priority order: (condition, code, detail)
    checks.append(("pre_reason is not null", "pre_reason", "pre_detail"))
    checks.append(
        (
            "false" if direct is not None else "v is null or not starts_with(ltrim(payload), '{')",
            "'malformed_json'",
            "null"
            if direct is not None
            else "case when json_valid(payload) then 'line is JSON ' || json_type(payload) || "
            "', expected an object' else 'line is not valid JSON (truncated or malformed)' end",
        )
    )
    # a column can only be too large when the whole payload is: one cheap test for most rows
    sizes = {col: f'strlen("raw_{col}"::varchar)' for col in spec.column_names}
    checks.append(
        (
            ("" if direct is not None else f"strlen(payload) > {MAX_FIELD_BYTES} and ")
            + f"greatest({', '.join(sizes.values())}) > {MAX_FIELD_BYTES}",
            "'value_too_large'",
            "case "
            + " ".join(
                f"when {size} > {MAX_FIELD_BYTES} then format('column {col} "
                f"is {{}} bytes; limit is {MAX_FIELD_BYTES}', {size})"
                for col, size in sizes.items()
            )
            + " end",
        )
    )
    for key in spec.keys:
        checks.append(
            (
                f'"{key}" is null',
                "'null_key'",
                f"'{key} is missing or empty (it is a key of {spec.name})'",
            )
        )
    if spec.name == "events":
        checks.append(
            (
                '"user_id" is null and "anonymous_id" is null',
                "'null_key'",
                "'both user_id and anonymous_id are missing or empty'",
            )
        )
    for col in spec.required:
        if col not in spec.keys:
            checks.append(
                (
                    f'"raw_{col}" is null',
                    "'missing_required_column'",
                    f"'field {col} is missing or empty (required: {', '.join(spec.required)})'",
                )
            )
    for col, kind in spec.columns:
        if kind in _KIND_TEXT:
            checks.append(
                (
                    f'"raw_{col}" is not null and "{col}" is null',
                    "'wrong_type'",
                    f"format('column {col}: expected {_KIND_TEXT[kind]}, found {{}}', "
                    f'left("raw_{col}"::varchar, 100))',
                )
            )
    for col, kind in spec.columns:
        if kind == "ts":
            checks.append(_implausible_check(col))
    if spec.name == "events":
        checks.append(
            (
                'not list_contains($event_types, "type")',
                "'unknown_event'",
                "format('type {} is not one of track, identify, page', \"type\")",
            )
        )
        checks.append(
            (
                '"type" = \'track\' and ("event" is null or not list_contains($known_events, "event"))',
                "'unknown_event'",
                "format('track event {} is not in the tracking plan "
                "(dbt_project.yml vars.tracking_plan)', coalesce('''' || \"event\" || '''', 'null'))",
            )
        )
    for col, allowed in _accepted_values(spec).items():
        listed = "[" + ", ".join(f"'{v}'" for v in allowed) + "]"
        checks.append(
            (
                f'"{col}" is not null and not list_contains({listed}, "{col}")',
                "'invalid_value'",
                f"format('{col} {{}} is not one of {', '.join(allowed)}', \"{col}\")",
            )
        )
    if spec.name == "billing_invoices":
        checks.append(
            (
                '"period_end" < "period_start"',
                "'invalid_value'",
                'format(\'period_end {} is before period_start {}\', "period_end", "period_start")',
            )
        )
        checks.append(
            ('"amount" < 0', "'negative_amount'", "format('amount {} is negative', \"amount\")")
        )
        checks.append(
            (
                'not ("amount" <= $max_amount::double)',
                "'amount_out_of_range'",
                "format('amount {} is above {} (SEGFLOW_DQ_MAX_AMOUNT)', \"amount\", "
                "$max_amount::double)",
            )
        )
        checks.append(
            (
                f'list_contains({_sql_list(REVENUE_STATUSES)}, "status") and "paid_at" is null',
                "'missing_paid_date'",
                "format('invoice {} is {} but has no paid date, so its revenue would be "
                "lost: map paid_at, or declare `fallback:` under columns.paid_at (e.g. the "
                'created or period start date)\', "invoice_id", "status")',
            )
        )
    for col, kind in spec.columns:
        if kind == "ts":
            checks.append(
                (
                    f'$floor::timestamp is not null and "{col}" < $floor::timestamp',
                    "'timestamp_too_old'",
                    f"format('{col} {{}} is before SEGFLOW_TIMESTAMP_FLOOR {{}}', \"{col}\", "
                    "$floor::date)",
                )
            )
    for col in spec.future_checked:
        checks.append(
            (
                f'"{col}" > $now::timestamp + INTERVAL {int(FUTURE_TOLERANCE.total_seconds())} SECOND',
                "'timestamp_in_future'",
                f"format('{col} {{}} is in the future (now {{}})', \"{col}\", $now::timestamp)",
            )
        )
    if spec.name == "events":
        checks.append(
            (
                "partition_date is not null and "
                '"timestamp"::date < partition_date - $late_days::integer',
                "'outside_late_window'",
                "format('timestamp {} is more than {} days before partition {}', "
                '"timestamp", $late_days, partition_date)',
            )
        )
    # the conditions are evaluated once: `rule` is the number of the first that holds
    rule = "case " + " ".join(f"when {c} then {i}" for i, (c, _, _) in enumerate(checks)) + " end"
    code = (
        "case when rule is not null then case rule "
        + " ".join(f"when {i} then {k}" for i, (_, k, _) in enumerate(checks))
        + " end end"
    )
    detail = (
        "case when rule is not null then case rule "
        + " ".join(f"when {i} then {d}" for i, (_, _, d) in enumerate(checks))
        + " end end"
    )
    # an implausible year places no row in a partition (it is quarantined, unassigned)
    derived = (
        "coalesce("
        + ", ".join(f'case when {_plausible(c)} then "{c}" end' for c in spec.date_columns)
        + ")::date"
    )
    return f"""
with x as (
  select *, case when pre_reason is null then {parse} end as v{map_expr}
  from {stage}
), r0 as (select *, {base_select}{id_select} from x),
r as (select r0.*, {raw_select}, {status} as _identity, {fallback_used} as _fallback
      from r0 {join}),
t as (select *, {", ".join(typed)} from r),
c as (select *, {rule} as rule from t)
select source_file, source_line, partition_date, quarantine_rowid,
       {", ".join(f'"{c}"' for c in spec.column_names)},
       {code} as reason_code, {detail} as reason_detail, {derived} as derived_date,
       case when rule is not null then {payload} end as payload, _identity, _fallback
from c"""


YEARS = PLAUSIBLE_YEARS


def _plausible(col: str) -> str:
    return f'year("{col}") between {YEARS[0]} and {YEARS[1]}'


def _implausible_check(col: str) -> tuple[str, str, str]:
    """A timestamp whose year is outside YEARS, with the epoch unit its digits suggest."""
    r = f'"raw_{col}"'
    digits = f"length(regexp_extract({r}, '^-?(\\d+)', 1))"
    unit = (
        f"case when not regexp_full_match({r}, '-?\\d+(\\.\\d*)?') then "
        "'check the column''s `format:`' "
        f"when {digits} >= 18 then 'the number looks like epoch nanoseconds: divide by 1000 "
        "and use format: epoch_us' "
        f"when {digits} >= 15 then 'the number looks like epoch microseconds: set format: "
        "epoch_us' "
        f"when {digits} >= 12 then 'the number looks like epoch milliseconds: set format: "
        "epoch_ms' "
        "else 'the number looks like epoch seconds: set format: epoch_s' end"
    )
    return (
        f'"{col}" is not null and not ({_plausible(col)})',
        "'implausible_timestamp'",
        f"format('{col} {{}} reads as year {{}}, outside {YEARS[0]}-{YEARS[1]}: {{}}', "
        f'left({r}, 40), year("{col}"), {unit})',
    )


def _coalesce(exprs: list[str]) -> str:
    return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"


def _sql_list(values) -> str:
    return "[" + ", ".join(_sql_str(v) for v in values) + "]"


def _apply_fallbacks(spec: TableSpec, post: dict[str, str], fallbacks: dict[str, str]) -> str:
    """Put each declared fallback (`"f_<col>"`) behind its column's expression in `post`; an
    invoice's paid date falls back only on revenue rows (a fallback date on an open invoice
    would invent a payment). Returns the expression naming the columns that used one."""
    used = []
    for col, _expr in fallbacks.items():
        primary = post[col]
        fallback = f'"f_{col}"'
        if spec.name == "billing_invoices" and col == "paid_at":
            fallback = (
                f"case when list_contains({_sql_list(REVENUE_STATUSES)}, {post['status']}) "
                f"then {fallback} end"
            )
        post[col] = f"coalesce({primary}, {fallback})"
        used.append(f"case when ({primary}) is null and {fallback} is not null then '{col}' end")
    return f"nullif(concat_ws(',', {', '.join(used)}), '')" if used else "null::varchar"


def _accepted_values(spec: TableSpec) -> dict[str, tuple[str, ...]]:
    """Accepted values a raw row must have (contracts/raw.py; null is allowed here, required
    columns are checked separately). Plans come from the tracking plan."""
    return RAW[spec.name].accepted_values


def _params(
    sql: str,
    now: datetime,
    late_days: int,
    floor: date | None = None,
    max_amount: float | None = None,
) -> dict:
    """The named parameters `sql` uses (DuckDB rejects unused ones)."""
    plan = tracking_plan.load()
    values = {
        "now": now,
        "late_days": late_days,
        "floor": floor,
        "max_amount": MAX_AMOUNT if max_amount is None else max_amount,
        "known_events": sorted(plan.known_events),
        "event_types": list(EVENT_TYPES),
    }
    return {k: v for k, v in values.items() if f"${k}" in sql}


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
    for file, code, ident, used, n in conn.execute(
        f"select source_file, reason_code, _identity, _fallback, count(*) from {typed} "
        f"where {where} group by all"
    ).fetchall():
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
        sql = _typed_sql(spec, "_segflow_stage_rows", source, tabular)
        create_stage(conn, "_segflow_stage")
        try:
            read = stage_files(conn, "_segflow_stage", spec, group, source)
            _note(report, read)
            verb = f"create or replace temp table {target} as" if first else f"insert into {target}"
            conn.execute(f"{verb} {sql}", _params(sql, now, late_days, *limits))
            if read.tables:  # CSV read by Arrow: typed straight from its columns
                cols = direct_columns(conn, "_segflow_stage")
                direct = _typed_sql(spec, "_segflow_stage_cols", source, True, cols)
                conn.execute(
                    f"insert into {target} {direct}", _params(direct, now, late_days, *limits)
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
    params: dict = {"t": table}
    if partition_dates is not None:
        where += " and list_contains($d, partition_date)"
        params["d"] = sorted(set(partition_dates))
    conn.execute(
        f"""insert into _segflow_replay
        select source_file, source_line, partition_date, payload,
          case when contains(payload, chr(65533)) then 'bad_encoding' end,
          case when contains(payload, chr(65533))
               then 'payload still holds undecodable bytes (U+FFFD)' end, rowid
        from raw.quarantine where {where}""",
        params,
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
        sql = _typed_sql(spec, "_segflow_replay_rows", by_name.get(name), tabular)
        sql = f"select * from ({sql}) where list_contains($replay_files, source_file)"
        conn.execute(
            f"{verb} {sql}",
            {
                **_params(sql, now, late_arrival_days, timestamp_floor, max_amount),
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
