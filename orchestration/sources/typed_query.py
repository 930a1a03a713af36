"""The loader's one query per staged batch: `typed_sql` turns a source mapping and a raw table
contract into a SELECT over the stage with every contract column typed (text, number,
timestamp, JSON), the first failing row rule (`rules.py`) as `reason_code` / `reason_detail`,
the date that places an undated row, the identity match, the declared fallbacks used and the
daylight-saving notes. Each payload is parsed once; all rules are one CASE."""

from __future__ import annotations

from orchestration.sources.compiler import (
    Compiler,
    apply_fallbacks,
    coalesce,
    dst_local_sql,
    dst_sql,
    field_ref,
    sql_str,
    transform_spec,
    trimmed,
    ts_sql,
)
from orchestration.sources.mapping_rules import Identity
from orchestration.sources.mappings import SourceMapping, default_source
from orchestration.sources.rules import first_rule, plausible, row_checks
from orchestration.sources.tables import TableSpec, to_snake
from orchestration.sources.zones import offset_sql, on_change_day_sql, zone_offsets_join


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
            base[col] = joined if kind == "json" else trimmed(joined)
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


def _typed_columns(spec: TableSpec, source: SourceMapping, walls: set[str]) -> list[str]:
    """`raw_<col>` text -> the contract type (null when it does not convert: wrong_type);
    `walls`: the timestamp columns whose wall time `n_<col>` the query already has."""
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
            wall, offset = (f'"n_{col}"', f'"o_{col}"') if col in walls else (None, None)
            formats = rule.formats if rule else ()
            typed.append(f'{ts_sql(r, formats, source.time_zone, wall, offset)} as "{col}"')
        else:  # minified JSON text; a string holding an object is unwrapped
            typed.append(f"""case when starts_with({r}, '{{') then {r}::varchar
                when starts_with({r}, '"') and json_valid({r} ->> '$')
                     and json_type(({r} ->> '$')::json) = 'OBJECT' then {r} ->> '$' end
                as "{col}\"""")
    return typed


def _dst_exprs(spec: TableSpec, source: SourceMapping) -> tuple[str, str, str, set[str]]:
    """Which zoneless timestamps fell in a daylight-saving gap or overlap ('<col> gap', ...):
    (the wall-time columns `n_<col>` to select first, their days' offsets `o_<col>` to select
    next (one list lookup per value, shared by the conversion and the note), the note
    expression over them, the columns that have one)."""
    locals_, offsets, parts, change_days, walls = [], [], [], [], set()
    for col, kind in spec.columns:
        if kind != "ts":
            continue
        rule = source.columns.get(col)
        text, wall = f'"raw_{col}"', f'"n_{col}"'
        local = dst_local_sql(text, rule.formats if rule else (), source.time_zone)
        if local is not None:
            locals_.append(f"{local} as {wall}")
            offsets.append(f'{offset_sql(wall)} as "o_{col}"')
            walls.add(col)
            parts.append(f"'{col} ' || ({dst_sql(text, wall, source.time_zone)})")
            change_days.append(on_change_day_sql(wall, f'"o_{col}"'))
    if not parts:
        return "", "", "null::varchar", walls
    # most rows are on a day without a change: one list lookup each, no note built
    note = f"nullif(concat_ws(',', {', '.join(parts)}), '')"
    return (
        ", " + ", ".join(locals_),
        ", " + ", ".join(offsets),
        f"case when {' or '.join(change_days)} then {note} end",
        walls,
    )


def typed_sql(
    spec: TableSpec,
    stage: str,
    source: SourceMapping | None = None,
    tabular: bool = False,
    direct: list[str] | None = None,
    padded: set[str] | None = None,
    lean: bool = False,
    cased: set[str] | None = None,
) -> str:
    """SELECT over a stage table: contract columns typed, plus reason_code/reason_detail/
    derived_date/_identity/_fallback, and the payload of quarantined rows only. Each payload is
    parsed once (`json_transform`, or `json_extract` of every mapped path; a failure means a
    malformed line). Parameters: $now, $late_days, $floor, $max_amount, $known_events,
    $event_types. `direct`: the stage has these (snake_case, text) columns instead of a JSON
    payload (CSV read by Arrow); the payload of quarantined rows is built from them; `padded`:
    those of them with a value starting or ending with a space (None: any); `cased`: the
    stage's cased copies of them (`l_<name>` / `u_<name>`). `lean`: null reason_detail and
    payload (a query that keeps only reason_code plans faster)."""
    source = source or default_source(spec.name)
    comp = Compiler(spec, source, tabular, direct, padded, cased)
    base = _base_exprs(spec, source, comp, direct)
    cased_base = {
        col: e
        for col, kind in spec.columns
        if col in source.columns and (e := comp.cased_base(source.columns[col], kind))
    }
    comp.cased_cols = set(cased_base)
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
        + [f'{e} as "c_{c}"' for c, e in cased_base.items()]
        + [f'{e} as "f_{c}"' for c, e in fallbacks.items()]
    )
    id_select = "".join(f', {e} as "{k}"' for k, e in id_exprs.items())
    raw_select = ", ".join(f'{post[c]} as "raw_{c}"' for c, _ in spec.columns)
    wall_times, offsets, dst, walls = _dst_exprs(spec, source)
    typed = _typed_columns(spec, source, walls)
    rule, code, detail = first_rule(row_checks(spec, direct))
    if lean:
        detail, payload = "null::varchar", "null::varchar"
    # an implausible year places no row in a partition (it is quarantined, unassigned)
    derived = (
        "coalesce("
        + ", ".join(f'case when {plausible(c)} then "{c}" end' for c in spec.date_columns)
        + ")::date"
    )
    return f"""
with x as (
  select *, case when pre_reason is null then {parse} end as v{map_expr}
  from {stage}
), r0 as (select *, {base_select}{id_select} from x),
r as (select r0.*, {raw_select}, {status} as _identity, {fallback_used} as _fallback
      from r0 {join}),
n as (select *{wall_times} from r{zone_offsets_join(source.time_zone)}),
o as (select *{offsets} from n),
t as (select *, {", ".join(typed)}, {dst} as _dst from o),
c as (select *, {rule} as rule from t)
select source_file, source_line, partition_date, quarantine_rowid,
       {", ".join(f'"{c}"' for c in spec.column_names)},
       {code} as reason_code, {detail} as reason_detail, {derived} as derived_date,
       case when rule is not null then {payload} end as payload, _identity, _fallback, _dst
from c"""
