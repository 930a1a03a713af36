"""Custom CRM attribute values that do not parse as their declared type (a date of birth
"31/02/1990", a number "12,5x"): the contact still loads and the attribute is null in the marts,
but each bad value is recorded in `raw.quarantine` (table `crm_contacts.attributes`, reason
`bad_attribute_value`, with its file, line, contact, attribute and value) and counted per
attribute and per CRM version, so bad input is loud and nothing is lost.

The check casts with the same SQL types the dbt macro `custom_attribute_value` uses
(contracts.attributes.PARSED_AS, passed to dbt in the var). Rows under this table name are not
row-level quarantine: the row reconciliation (read = loaded + quarantined) does not count them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb
import pandas as pd

from contracts.attributes import (
    BAD_VALUE_REASON,
    QUARANTINE_TABLE,
    RAW_COLUMN,
    CustomAttribute,
)
from orchestration.sources.raw_write import ensure_raw_schema, utcnow

_EXPECTED = {"date": "a date (YYYY-MM-DD)", "number": "a number (e.g. 12.5)"}
NOT_AN_OBJECT = "(all)"  # the attribute name recorded when the JSON object itself is unreadable


@dataclass
class AttributeValueReport:
    """Per declared attribute: values present, bad values, CRM versions and contacts hit."""

    counts: list[dict] = field(default_factory=list)
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def bad_values(self) -> int:
        return sum(c["bad_values"] for c in self.counts)

    def message(self) -> str:
        """What the run's WARN check and the dry run say (never blocking)."""
        bad = [c for c in self.counts if c["bad_values"]]
        if not bad:
            return "OK"
        summary = "; ".join(
            f"{c['attribute']}: {c['bad_values']} bad of {c['values']} "
            f"({c['crm_versions_with_bad_value']} CRM versions, "
            f"{c['contacts_with_bad_value']} contacts)"
            for c in bad
        )
        return (
            f"WARN: values that do not parse as their declared type are null: {summary}; "
            f"see raw.quarantine (reason {BAD_VALUE_REASON})"
        )


def _bad_values_sql(attributes: Sequence[CustomAttribute], where: str) -> str:
    """One row per bad value (or per unreadable attributes object) of the rows `where`."""
    col = f'"{RAW_COLUMN}"'
    parts = [
        f"""select _partition_date, _source_file, _source_line, user_id, updated_at,
                   '{NOT_AN_OBJECT}' as attribute, {col} as value,
                   'attributes is not a JSON object' as problem
            from raw.crm_contacts
            where {where} and nullif(trim({col}), '') is not null
              and coalesce(try(json_type({col}::json)), '') <> 'OBJECT'"""
    ]
    for a in attributes:
        if a.parsed_as is None:
            continue
        text = f"nullif(trim(json_extract_string({col}, '$.{a.name}')), '')"
        parts.append(
            f"""select _partition_date, _source_file, _source_line, user_id, updated_at,
                       '{a.name}', {text}, 'is not {_EXPECTED[a.type]}'
                from raw.crm_contacts
                where {where} and json_valid({col}) and {text} is not null
                  and try_cast({text} as {a.parsed_as}) is null"""
        )
    return "\nunion all\n".join(parts)


def record_bad_attribute_values(
    conn: duckdb.DuckDBPyConnection,
    attributes: Sequence[CustomAttribute],
    dates: Sequence[date] | None = None,
    now: datetime | None = None,
) -> AttributeValueReport:
    """Replace the bad-value records of `dates` (all days when None) in `raw.quarantine` with
    those of `raw.crm_contacts` now, and count them per attribute."""
    ensure_raw_schema(conn)
    days = sorted(set(dates)) if dates is not None else None
    where = "true" if days is None else "list_contains($days, _partition_date)"
    params = {} if days is None else {"days": days}
    conn.execute(
        "create or replace temp table _segflow_bad_attributes as "
        + _bad_values_sql(attributes, where),
        params,
    )
    scope = "" if days is None else " and list_contains($days, partition_date)"
    conn.execute("begin transaction")
    try:
        conn.execute(
            f"delete from raw.quarantine where table_name = $t{scope}",
            {"t": QUARANTINE_TABLE, **params},
        )
        conn.execute(
            """insert into raw.quarantine
            select $t, _partition_date, _source_file, _source_line,
                   to_json({user_id: user_id, updated_at: updated_at, attribute: attribute,
                            value: value})::varchar,
                   $reason, 'contact ' || user_id || ': ' || attribute || ' ' || problem
                       || ': ' || coalesce(to_json(value)::varchar, 'null'),
                   $now, null
            from _segflow_bad_attributes order by _source_file, _source_line, attribute""",
            {"t": QUARANTINE_TABLE, "reason": BAD_VALUE_REASON, "now": now or utcnow()},
        )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    report = AttributeValueReport(_counts(conn, attributes, where, params))
    report.preview = conn.execute(
        "select _source_file as file, _source_line as line, user_id, attribute, value, problem "
        "from _segflow_bad_attributes order by file, line, attribute limit 20"
    ).df()
    conn.execute("drop table _segflow_bad_attributes")
    return report


def _counts(conn, attributes, where: str, params: dict) -> list[dict]:
    """Per attribute: CRM versions (raw rows) carrying a value, bad values, versions and
    contacts with a bad value. Unreadable attribute objects count under `(all)`."""
    present = {
        a.name: conn.execute(
            f"select count(*) from raw.crm_contacts where {where} and json_valid("
            f'"{RAW_COLUMN}") and nullif(trim(json_extract_string("{RAW_COLUMN}", '
            f"'$.{a.name}')), '') is not null",
            params,
        ).fetchone()[0]
        for a in attributes
    }
    bad = {
        name: (n, versions, contacts)
        for name, n, versions, contacts in conn.execute(
            "select attribute, count(*), count(distinct (user_id, updated_at, _source_file, "
            "_source_line)), count(distinct user_id) from _segflow_bad_attributes group by 1"
        ).fetchall()
    }
    rows = [
        {
            "attribute": a.name,
            "type": a.type,
            "values": present[a.name],
            "bad_values": bad.get(a.name, (0, 0, 0))[0],
            "crm_versions_with_bad_value": bad.get(a.name, (0, 0, 0))[1],
            "contacts_with_bad_value": bad.get(a.name, (0, 0, 0))[2],
        }
        for a in attributes
    ]
    if NOT_AN_OBJECT in bad:
        n, versions, contacts = bad[NOT_AN_OBJECT]
        rows.append(
            {
                "attribute": NOT_AN_OBJECT,
                "type": "json object",
                "values": n,
                "bad_values": n,
                "crm_versions_with_bad_value": versions,
                "contacts_with_bad_value": contacts,
            }
        )
    return rows
