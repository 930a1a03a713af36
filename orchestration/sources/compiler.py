"""Column expressions of one source mapping (sources.yml) over staged rows: where a contract
column's text comes from (a header, a JSON path, a const, a file name, merged objects...), and
how it is shaped on the way (case, value maps, units, size buckets, id normalisation, declared
fallbacks). The row rules that type and check the result are in `rules.py`.
"""

from __future__ import annotations

import json

from contracts.raw import REVENUE_STATUSES
from orchestration.sources.cased import CASED_PREFIX, cased_plain
from orchestration.sources.globs import glob_regex
from orchestration.sources.mapping_rules import ColumnRule
from orchestration.sources.mappings import DEFAULT_CASE, DEFAULT_VALUE_MAPS, SourceMapping
from orchestration.sources.tables import TableSpec, to_snake
from orchestration.sources.zones import wall_to_utc_sql

_TZ_SUFFIX = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$"


def transform_spec(spec: TableSpec) -> str:
    """`json_transform` spec: every accepted input key of the contract, as text (JSON columns
    as JSON text). One parse per row yields all fields; keys match case-sensitively."""
    fields = {
        alias: "JSON" if kind == "json" else "VARCHAR"
        for col, kind in spec.columns
        for alias in spec.aliases(col)
    }
    return json.dumps(fields).replace("'", "''")


def field_ref(alias: str) -> str:
    return 'v."' + alias.replace('"', '""') + '"'


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def json_path(path: tuple[str, ...]) -> str:
    return "$" + "".join('."' + p.replace('"', '\\"') + '"' for p in path)


def ts_sql(
    r: str, formats: tuple[str, ...], zone: str, wall: str | None = None, offset: str | None = None
) -> str:
    """Text -> naive UTC timestamp: ISO (with or without a zone; zoneless read in `zone`),
    epoch seconds / ms / us, or strptime patterns; formats tried in order. `wall`: a column
    holding `dst_local_sql` of the same text, reused (one parse per row instead of two), and
    `offset` one holding its day's offset (`zones.offset_sql`)."""

    def local(expr: str, offset: str | None = None) -> str:
        return expr if zone == "UTC" else wall_to_utc_sql(expr, zone, offset)

    if wall is not None and zone != "UTC" and _wall_reusable(formats or ("iso",)):
        return _ts_from_wall(r, formats or ("iso",), wall, local, offset)
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
            parts.append(f"timezone('UTC', try_strptime({r}, {sql_str(fmt)}))")
        else:
            parts.append(local(f"try_strptime({r}, {sql_str(fmt)})"))
    inner = parts[0] if len(parts) == 1 else "coalesce(" + ", ".join(parts) + ")"
    return f"case when {r} is null then null else {inner} end"


def _naive_format(fmt: str) -> bool:
    return "%" in fmt and "%z" not in fmt and "%Z" not in fmt


def _wall_reusable(formats: tuple[str, ...]) -> bool:
    """Whether `dst_local_sql` tries the same formats in the same order as `ts_sql` (iso, if
    present, first; then strptime patterns without a zone), so its wall time can be reused."""
    rest = formats[1:] if formats[0] == "iso" else formats
    return all(_naive_format(f) for f in rest)


def _ts_from_wall(r: str, formats: tuple[str, ...], wall: str, local, offset=None) -> str:
    """`ts_sql` over the reused wall time: a zoneless text is `local(wall)` (the formats'
    `coalesce` of local times is the local time of their wall times' `coalesce`); a text
    ending in Z or an offset takes the ISO branch first, then the other formats."""
    others = [local(f"try_strptime({r}, {sql_str(f)})") for f in formats if f != "iso"]
    at_wall = local(wall, offset)
    if formats[0] != "iso":
        return f"case when {r} is null then null else {at_wall} end"
    # ending in Z but not ISO: the wall time is the other formats' (`wall` tries the ISO cast
    # first, and it failed), so its local time is theirs; no second parse in the query
    utc = coalesce(
        [f"try_cast({r} as timestamp)", at_wall] if others else [f"try_cast({r} as timestamp)"]
    )
    # with an offset the ISO cast without a zone may still succeed (`10:00 +05:00`): the
    # formats are tried here on their own
    zoned = coalesce([f"timezone('UTC', try_cast({r} as timestamptz))", *others])
    return f"""case when {r} is null then null when ends_with({r}, 'Z') then {utc}
        when length({r}) >= 19 and regexp_matches({r}, '{_TZ_SUFFIX}') then {zoned}
        else {at_wall} end"""


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


DST_RULE = (
    "gap (a wall time that does not exist): shifted forward by the gap, e.g. 02:30 -> 03:30; "
    "overlap (a wall time that happens twice): the later, standard-time occurrence"
)


def dst_local_sql(r: str, formats: tuple[str, ...], zone: str) -> str | None:
    """The zoneless wall time the text `r` names (None when `zone` has no daylight saving to
    note or no format reads a wall time); computed once per row for `dst_sql`."""
    naive = [
        f"try_strptime({r}, {sql_str(f)})"
        for f in formats
        if "%" in f and "%z" not in f and "%Z" not in f
    ]
    if not formats or "iso" in formats:
        naive.insert(0, f"try_cast({r} as timestamp)")
    if zone == "UTC" or not naive:
        return None
    return coalesce(naive)


def dst_sql(r: str, local: str, zone: str) -> str:
    """'gap' / 'overlap' when the zoneless text `r`, read as the wall time `local`
    (`dst_local_sql`), is one a daylight-saving change in `zone` skips or repeats (then
    resolved as DST_RULE says); else null. Evaluated only for wall times on a day the zone
    changes its offset (`zones.on_change_day_sql`); changes happen between 00:00 and 04:00."""
    z = sql_str(zone)
    there = f"timezone({z}, {local})"
    return f"""case when {local} is null or hour({local}) >= 4 or ends_with({r}, 'Z')
            or regexp_matches({r}, '{_TZ_SUFFIX}') then null
        when timezone({z}, {there}) <> {local} then 'gap'
        when timezone({z}, {there} + interval 1 hour) = {local}
          or timezone({z}, {there} - interval 1 hour) = {local} then 'overlap' end"""


class Compiler:
    """Column expressions of one source mapping over the staged payloads."""

    def __init__(
        self,
        spec: TableSpec,
        source: SourceMapping,
        tabular: bool,
        direct: list[str] | None,
        padded: set[str] | None = None,
        cased: set[str] | None = None,
    ) -> None:
        self.spec, self.source, self.tabular = spec, source, tabular or direct is not None
        self.direct = None if direct is None else set(direct)  # columns of a direct stage
        # direct columns with a value that starts or ends with a space (None: any may):
        # only these pay for `trim`
        self.padded = padded
        # the direct stage's cased copies (`l_<name>` / `u_<name>`, see `cased_headers`) and
        # the contract columns whose `case:` reads them (`"c_<col>"`, set by the query)
        self.cased = cased or set()
        self.cased_cols: set[str] = set()
        self._prefix = "d_"  # direct columns read: the text as is, or a cased copy
        self.paths: list[str] = []
        self.needs_map = False

    def _col(self, path: tuple[str, ...]) -> str | None:
        name = to_snake(path[0])
        return '"' + self._prefix + name + '"' if name in self.direct else None

    def cased_base(self, rule: ColumnRule, kind: str) -> str | None:
        """`base` of a `case:` rule read from the reader's cased copies of its columns, which
        equals `case(base)` (casing ASCII text moves no space and empties nothing); None when
        a column it reads has no cased copy or the rule is not a plain `cased_plain` one."""
        if self.direct is None or kind == "json" or not cased_plain(rule):
            return None
        prefix = CASED_PREFIX[rule.case]
        names = [to_snake(p[0]) for p in rule.paths]
        if any(n in self.direct and prefix + n not in self.cased for n in names):
            return None
        self._prefix = prefix
        try:
            return self.base(rule, kind)
        finally:
            self._prefix = "d_"

    def _ref(self, path: tuple[str, ...]) -> str:
        if self.direct is not None:
            col = self._col(path)
            if col is None:
                return "null::json"
            return (
                f"try({col}::json)"
                if len(path) == 1
                else (f"json_extract({col}, {sql_str(json_path(path[1:]))})")
            )
        if self.tabular:
            path = (to_snake(path[0]), *path[1:])
        key = json_path(path)
        if key not in self.paths:
            self.paths.append(key)
        return f"v[{self.paths.index(key) + 1}]"

    def text(self, path: tuple[str, ...]) -> str:
        if self.direct is not None and len(path) == 1:
            return self._direct_text(path)
        nested = trimmed(f"{self._ref(path)} ->> '$'")
        if self.tabular and len(path) > 1:
            # a nested field flattened into a CSV / parquet header: `status_transitions.paid_at`
            # (json_normalize) or `status_transitions_paid_at` both read as the snake name
            flat = self.text(("_".join(to_snake(p) for p in path),))
            return f"coalesce({nested}, {flat})"
        return nested

    def json(self, path: tuple[str, ...]) -> str:
        if self.direct is not None and len(path) == 1:
            return self._direct_text(path)
        return f"nullif({self._ref(path)}::varchar, 'null')"

    def _direct_text(self, path: tuple[str, ...]) -> str:
        col = self._col(path)
        if col is None:
            return "null::varchar"
        if self.padded is None or to_snake(path[0]) in self.padded:
            return trimmed(col)
        return f"nullif({col}, '')"

    def _names(self, names) -> list[str]:
        return [to_snake(n) if self.tabular else n for n in names]

    def base(self, rule: ColumnRule, kind: str) -> str:
        if rule.const is not None:
            return sql_str(rule.const)
        if rule.file_name:
            whens = " ".join(
                f"when regexp_matches(source_file, {sql_str(glob_regex('**/' + g if '/' not in g else g).pattern)}) "
                f"then {sql_str(v)}"
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
            excl = "[" + ", ".join(sql_str(n) for n in self._names(rule.rest)) + "]"
            prefixes = (
                " or ".join(
                    f"starts_with(e.key, {sql_str(p)})"
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
                f"starts_with(e.key, {sql_str(prefix)}) and e.value::varchar <> 'null'), "
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
                expr = f'"c_{col}"' if col in self.cased_cols else f"{rule.case}({expr})"
            if rule.value_map:
                whens = " ".join(f"when {sql_str(k)} then {sql_str(v)}" for k, v in rule.value_map)
                other = sql_str(rule.default) if rule.default is not None else expr
                expr = f"case {expr} {whens} else {other} end"
            elif rule.default is not None:
                expr = f"coalesce({expr}, {sql_str(rule.default)})"
            if rule.divide_by:
                expr = (
                    f"coalesce(cast(try_cast({expr} as double) / {rule.divide_by} as varchar), "
                    f"{expr})"
                )
            if rule.minor_units:
                cur = currency or "null"
                zero = "[" + ", ".join(sql_str(z) for z in ZERO_DECIMAL) + "]"
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
                whens = " ".join(f"when {sql_str(k)} then {sql_str(v)}" for k, v in values.items())
                expr = f"case {expr} {whens} else {expr} end"
        if col in self.source.normalize_ids:
            expr = (
                f"case when contains({expr}, '.') then regexp_replace({expr}, "
                f"'^(-?[0-9]+)\\.0*$', '\\1') else {expr} end"
            )
        return expr


def trimmed(expr: str) -> str:
    """`expr` without leading/trailing spaces, '' as null: `trim` allocates a new string for
    every value, so it runs only on values that start or end with a space (same result, about
    half the cost on clean data)."""
    return (
        f"case when prefix({expr}, ' ') or suffix({expr}, ' ') then nullif(trim({expr}), '') "
        f"else nullif({expr}, '') end"
    )


def coalesce(exprs: list[str]) -> str:
    return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"


def sql_list(values) -> str:
    return "[" + ", ".join(sql_str(v) for v in values) + "]"


def apply_fallbacks(spec: TableSpec, post: dict[str, str], fallbacks: dict[str, str]) -> str:
    """Put each declared fallback (`"f_<col>"`) behind its column's expression in `post`; an
    invoice's paid date falls back only on revenue rows (a fallback date on an open invoice
    would invent a payment). Returns the expression naming the columns that used one."""
    used = []
    for col, _expr in fallbacks.items():
        primary = post[col]
        fallback = f'"f_{col}"'
        if spec.name == "billing_invoices" and col == "paid_at":
            fallback = (
                f"case when list_contains({sql_list(REVENUE_STATUSES)}, {post['status']}) "
                f"then {fallback} end"
            )
        post[col] = f"coalesce({primary}, {fallback})"
        used.append(f"case when ({primary}) is null and {fallback} is not null then '{col}' end")
    return f"nullif(concat_ws(',', {', '.join(used)}), '')" if used else "null::varchar"
