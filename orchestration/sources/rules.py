"""The row rules of the raw loader, compiled to one SQL query per staged batch.

`typed_sql` turns a source mapping and a raw table contract into a SELECT over the stage:
every contract column typed (text, number, timestamp, JSON), the first failing rule of each row
as `reason_code` / `reason_detail` (the reason codes of docs/contracts.md, in priority order),
the date that places an undated row, and the identity match. Each payload is parsed once; all
rules are one CASE, evaluated once per row.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from contracts import tracking_plan
from contracts.raw import (
    EVENT_TYPES,
    FUTURE_TOLERANCE_MINUTES,
    MAX_AMOUNT,
    MAX_FIELD_BYTES,
    PLAUSIBLE_YEARS,
    RAW,
    REVENUE_STATUSES,
)
from orchestration.sources.compiler import (
    Compiler,
    apply_fallbacks,
    coalesce,
    dst_sql,
    field_ref,
    sql_list,
    sql_str,
    transform_spec,
    ts_sql,
)
from orchestration.sources.files import TableSpec, to_snake
from orchestration.sources.mappings import Identity, SourceMapping, default_source

FUTURE_TOLERANCE = timedelta(minutes=FUTURE_TOLERANCE_MINUTES)
_KIND_TEXT = {"ts": "a timestamp (ISO 8601)", "num": "a number", "json": "a JSON object"}
Check = tuple[str, str, str]  # (condition, reason code, detail) as SQL expressions


def _base_exprs(
    spec: TableSpec, source: SourceMapping, comp: Compiler, direct: list[str] | None
) -> dict[str, str]:
    """Each contract column's text before shaping: the contract's aliases (no `columns:`
    block), the column's rule, or a header / key of the same name (never nulled in silence)."""
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
            refs = [field_ref(a) for a in spec.aliases(col)]
            joined = f"coalesce({', '.join(refs)})" if len(refs) > 1 else refs[0]
            base[col] = joined if kind == "json" else f"nullif(trim({joined}), '')"
        elif col in source.columns:
            base[col] = comp.base(source.columns[col], kind)
        else:  # not listed under `columns:`: a header / key of the same name, never nulled
            names = dict.fromkeys(to_snake(a) if comp.tabular else a for a in spec.aliases(col))
            if direct is not None:
                names = {n: None for n in names if n in comp.direct}
            refs = [comp.json((n,)) if kind == "json" else comp.text((n,)) for n in names]
            base[col] = coalesce(refs) if refs else "null::varchar"
    return base


def _id_exprs(ident: Identity, comp: Compiler) -> dict[str, str]:
    """Where the record's product id (`_ext`) and email (`_email`) are, for identity matching."""
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
    return id_exprs


def _parse_exprs(
    spec: TableSpec, source: SourceMapping, comp: Compiler, direct: list[str] | None
) -> tuple[str, str, str]:
    """The one parse of each payload (after every path was compiled), the payload kept for
    quarantined rows, and the key/value map for `rest` / `prefix` rules."""
    if direct is not None:
        parse = "null::varchar[]"
    elif source.default_columns:
        parse = f"try(json_transform(payload, '{transform_spec(spec)}'))"
    else:
        paths = comp.paths or ["$"]
        parse = f"try(json_extract(payload, [{', '.join(sql_str(p) for p in paths)}]))"
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
    return parse, payload, map_expr


def _post_exprs(
    spec: TableSpec, source: SourceMapping, comp: Compiler, base: dict[str, str]
) -> tuple[dict[str, str], str, str]:
    """Each column shaped (case, maps, units, ids) and the identity chain: (expressions, the
    identity status expression, the join to identify calls)."""
    ident = source.identity
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
    return post, status, join


def _typed_columns(spec: TableSpec, source: SourceMapping) -> list[str]:
    """`raw_<col>` text -> the contract type (null when it does not convert: wrong_type)."""
    typed = []
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
            typed.append(f'{ts_sql(r, rule.formats if rule else (), source.time_zone)} as "{col}"')
        else:  # minified JSON text; a string holding an object is unwrapped
            typed.append(f"""case when starts_with({r}, '{{') then {r}::varchar
                when starts_with({r}, '"') and json_valid({r} ->> '$')
                     and json_type(({r} ->> '$')::json) = 'OBJECT' then {r} ->> '$' end
                as "{col}\"""")
    return typed


def _dst_expr(spec: TableSpec, source: SourceMapping) -> str:
    """Which zoneless timestamps fell in a daylight-saving gap or overlap ('<col> gap', ...)."""
    parts = []
    for col, kind in spec.columns:
        if kind != "ts":
            continue
        rule = source.columns.get(col)
        found = dst_sql(f'"raw_{col}"', rule.formats if rule else (), source.time_zone)
        if found != "null::varchar":
            parts.append(f"'{col} ' || ({found})")
    return f"nullif(concat_ws(',', {', '.join(parts)}), '')" if parts else "null::varchar"


def _shape_checks(spec: TableSpec, direct: list[str] | None) -> list[Check]:
    """Reader problems, malformed lines, oversized values, missing keys."""
    checks: list[Check] = []
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
    return checks


def _type_checks(spec: TableSpec) -> list[Check]:
    """Required fields, types, plausible times."""
    checks: list[Check] = []
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
    return checks


def _value_checks(spec: TableSpec) -> list[Check]:
    """Event types and names, accepted values, invoice rules."""
    checks: list[Check] = []
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
                f'list_contains({sql_list(REVENUE_STATUSES)}, "status") and "paid_at" is null',
                "'missing_paid_date'",
                "format('invoice {} is {} but has no paid date, so its revenue would be "
                "lost: map paid_at, or declare `fallback:` under columns.paid_at (e.g. the "
                'created or period start date)\', "invoice_id", "status")',
            )
        )
    return checks


def _time_checks(spec: TableSpec) -> list[Check]:
    """Too old (SEGFLOW_TIMESTAMP_FLOOR), in the future, outside the late-arrival window."""
    checks: list[Check] = []
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
    return checks


def row_checks(spec: TableSpec, direct: list[str] | None = None) -> list[Check]:
    """Every row rule in priority order (the first that holds is the row's reason)."""
    return [
        *_shape_checks(spec, direct),
        *_type_checks(spec),
        *_value_checks(spec),
        *_time_checks(spec),
    ]


def _first_rule(checks: list[Check]) -> tuple[str, str, str]:
    """The CASE expressions: the number of the first rule that holds (evaluated once), and
    its code and detail."""
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
    return rule, code, detail


def typed_sql(
    spec: TableSpec,
    stage: str,
    source: SourceMapping | None = None,
    tabular: bool = False,
    direct: list[str] | None = None,
) -> str:
    """SELECT over a stage table: contract columns typed, plus reason_code/reason_detail/
    derived_date/_identity/_fallback, and the payload of quarantined rows only. Each payload is
    parsed once (`json_transform`, or `json_extract` of every mapped path; a failure means a
    malformed line). Parameters: $now, $late_days, $floor, $max_amount, $known_events,
    $event_types. `direct`: the stage has these (snake_case, text) columns instead of a JSON
    payload (CSV read by Arrow); the payload of quarantined rows is built from them."""
    source = source or default_source(spec.name)
    comp = Compiler(spec, source, tabular, direct)
    base = _base_exprs(spec, source, comp, direct)
    fallbacks = {
        col: coalesce([comp.text(p) for p in rule.fallback])
        for col, rule in source.columns.items()
        if rule.fallback
    }
    id_exprs = _id_exprs(source.identity, comp)
    parse, payload, map_expr = _parse_exprs(spec, source, comp, direct)  # after every path
    post, status, join = _post_exprs(spec, source, comp, base)
    fallback_used = apply_fallbacks(spec, post, fallbacks)
    base_select = ", ".join(
        [f'{e} as "b_{c}"' for c, e in base.items()]
        + [f'{e} as "f_{c}"' for c, e in fallbacks.items()]
    )
    id_select = "".join(f', {e} as "{k}"' for k, e in id_exprs.items())
    raw_select = ", ".join(f'{post[c]} as "raw_{c}"' for c, _ in spec.columns)
    typed = _typed_columns(spec, source)
    rule, code, detail = _first_rule(row_checks(spec, direct))
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
t as (select *, {", ".join(typed)}, {_dst_expr(spec, source)} as _dst from r),
c as (select *, {rule} as rule from t)
select source_file, source_line, partition_date, quarantine_rowid,
       {", ".join(f'"{c}"' for c in spec.column_names)},
       {code} as reason_code, {detail} as reason_detail, {derived} as derived_date,
       case when rule is not null then {payload} end as payload, _identity, _fallback, _dst
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


def _accepted_values(spec: TableSpec) -> dict[str, tuple[str, ...]]:
    """Accepted values a raw row must have (contracts/raw.py; null is allowed here, required
    columns are checked separately). Plans come from the tracking plan."""
    return RAW[spec.name].accepted_values


def params(
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
