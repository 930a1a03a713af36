"""What each person should look like in the destination, and which events to emit.

Reads the contract tables (docs/contracts.md): `user_segments` for the sync date, the latest
`user_scores` row per user on or before it, `segment_membership` transitions and
`user_triggers` firings inside the event window. Values are rounded so model noise below the
shown precision does not produce endless diffs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from ..warehouse import table_exists
from .ids import event_ulid

SYNCED_AT_ATTRIBUTE = "segflow_synced_at"
SEGMENT_ATTRIBUTE_PREFIX = "segment_"
TEXT_COLUMNS = ("primary_segment", "onboarding_flow", "next_block", "experiment", "experiment_variant")
SCORE_TEXT_COLUMNS = (
    "churn_band", "ltv_band", "churn_reasons", "ltv_reasons",
    "churn_model_version", "ltv_model_version", "conversion_model_version",
)


@dataclass(frozen=True)
class PayloadOptions:
    """Rounding and event window. Probabilities at 2 dp (a percentage point) are what a
    Customer.io segment rule can usefully compare; finer precision changes daily for most users
    and would re-send everyone (and trip the circuit breaker). LTV is sent in whole units."""

    probability_decimals: int = 2
    money_decimals: int = 0
    event_lookback_days: int = 3  # campaigns only trigger for events <= 72 h old


@dataclass(frozen=True)
class PersonRow:
    """Desired segflow attributes of one person, or why the row cannot be used."""

    person_id: str
    attributes: dict[str, Any]
    error: str = ""


@dataclass(frozen=True)
class EventSpec:
    person_id: str
    name: str
    timestamp: int
    event_id: str
    data: dict[str, Any] | None
    error: str = ""


class MissingInputError(RuntimeError):
    """A required input table is missing; the message names it."""


def payload_hash(attributes: dict[str, Any]) -> str:
    """Stable hash of the attributes that matter for diffing (never segflow_synced_at)."""
    stable = {k: v for k, v in attributes.items() if k != SYNCED_AT_ATTRIBUTE}
    text = json.dumps(stable, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def diff_attributes(previous: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Attributes to send so the destination goes from `previous` to `desired`: changed or
    new values, and "" (the API's documented removal) for attributes no longer present."""

    def canon(value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    changes = {
        name: value for name, value in desired.items()
        if name not in previous or canon(previous[name]) != canon(value)
    }
    for name in previous:
        if name not in desired:
            changes[name] = ""
    return changes


def _clean_number(value: Any, decimals: int) -> float | int | None:
    if value is None:
        return None
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return None
    rounded = round(number, decimals)
    return int(rounded) if decimals == 0 else rounded


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text != "" else None


def _segments(value: Any) -> list[str]:
    if value is None:
        return []
    return sorted({str(s) for s in value if s is not None and str(s) != ""})


def person_attributes(row: dict[str, Any], options: PayloadOptions) -> dict[str, Any]:
    """Segflow attributes for one joined user_segments + user_scores row. A person in no segment
    gets {} (everything cleared): segflow only describes people it currently segments."""
    segments = _segments(row.get("segments"))
    if not segments:
        return {}
    attributes: dict[str, Any] = {f"{SEGMENT_ATTRIBUTE_PREFIX}{s}": True for s in segments}
    attributes["segments"] = ",".join(segments)
    for column in TEXT_COLUMNS + SCORE_TEXT_COLUMNS:
        value = _text(row.get(column))
        if value is not None:
            attributes[column] = value
    for column in ("churn_probability", "conversion_probability"):
        value = _clean_number(row.get(column), options.probability_decimals)
        if value is not None:
            attributes[column] = value
    ltv = _clean_number(row.get("ltv_90d"), options.money_decimals)
    if ltv is not None:
        attributes["ltv_90d"] = ltv
    return attributes


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns "
        "where table_schema = 'main' and table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def latest_segment_date(conn: duckdb.DuckDBPyConnection) -> date | None:
    if not table_exists(conn, "main", "user_segments"):
        raise MissingInputError("table main.user_segments does not exist: run the segments step first")
    row = conn.execute("select max(segment_date) from main.user_segments").fetchone()
    return row[0] if row else None


def desired_people(
    conn: duckdb.DuckDBPyConnection, as_of: date, options: PayloadOptions
) -> list[PersonRow]:
    """One PersonRow per user in user_segments on `as_of`; duplicates and blank ids are
    returned with an `error` so the sync reports them instead of dropping them."""
    if not table_exists(conn, "main", "user_segments"):
        raise MissingInputError("table main.user_segments does not exist: run the segments step first")
    score_cols = [c for c in ("churn_probability", "ltv_90d", "conversion_probability",
                              *SCORE_TEXT_COLUMNS) if c in _columns(conn, "user_scores")]
    if score_cols:
        select_scores = ", ".join(f"sc.{c}" for c in score_cols)
        join = (
            "left join (select * from main.user_scores where score_date <= $as_of "
            "qualify row_number() over (partition by user_id order by score_date desc) = 1) sc "
            "on sc.user_id = us.user_id"
        )
    else:
        select_scores, join = "", ""
    seg_cols = ["segments", *[c for c in TEXT_COLUMNS if c in _columns(conn, "user_segments")]]
    query = (
        f"select us.user_id, {', '.join('us.' + c for c in seg_cols)}"
        f"{', ' + select_scores if select_scores else ''} "
        f"from main.user_segments us {join} where us.segment_date = $as_of order by us.user_id"
    )
    cursor = conn.execute(query, {"as_of": as_of})
    names = [d[0] for d in cursor.description]
    rows: list[PersonRow] = []
    seen: dict[str, int] = {}
    for values in cursor.fetchall():
        record = dict(zip(names, values, strict=True))
        person_id = _text(record["user_id"])
        if person_id is None:
            rows.append(PersonRow("", {}, "user_segments row with a null/empty user_id"))
            continue
        if person_id in seen:
            rows[seen[person_id]] = PersonRow(
                person_id, {}, f"user_segments has more than one row for user_id on {as_of}"
            )
            continue
        seen[person_id] = len(rows)
        rows.append(PersonRow(person_id, person_attributes(record, options)))
    return rows


def _unix_seconds(value: date | datetime) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return int(moment.timestamp())


def desired_events(
    conn: duckdb.DuckDBPyConnection, as_of: date, options: PayloadOptions
) -> list[EventSpec]:
    """segment_entered / segment_exited / trigger events dated inside the lookback window
    ending on `as_of` (the window lets a skipped day catch up; acked ids prevent re-sends)."""
    start = as_of - timedelta(days=max(1, options.event_lookback_days) - 1)
    events: list[EventSpec] = []
    if table_exists(conn, "main", "segment_membership"):
        for column, name in (("entered_at", "segment_entered"), ("exited_at", "segment_exited")):
            rows = conn.execute(
                f"select user_id, segment, {column} from main.segment_membership "
                f"where cast({column} as date) between ? and ? order by 1, 2",
                [start, as_of],
            ).fetchall()
            for user_id, segment, moment in rows:
                person_id = _text(user_id) or ""
                ts = _unix_seconds(moment)
                events.append(EventSpec(
                    person_id, name, ts, event_ulid(person_id, name, ts, str(segment)),
                    {"segment": str(segment)},
                    "" if person_id else "segment_membership row with a null user_id",
                ))
    if table_exists(conn, "main", "user_triggers"):
        rows = conn.execute(
            "select user_id, trigger, fired_at, context from main.user_triggers "
            "where cast(fired_at as date) between ? and ? order by 1, 2, 3",
            [start, as_of],
        ).fetchall()
        for user_id, trigger, fired_at, context in rows:
            person_id = _text(user_id) or ""
            name = str(trigger or "")
            ts = _unix_seconds(fired_at)
            data, error = _event_data(context)
            if not person_id:
                error = "user_triggers row with a null user_id"
            events.append(EventSpec(person_id, name, ts, event_ulid(person_id, name, ts), data, error))
    return events


def _event_data(context: Any) -> tuple[dict[str, Any] | None, str]:
    if context is None or context == "":
        return {}, ""
    if isinstance(context, dict):
        return context, ""
    try:
        parsed = json.loads(context)
    except (TypeError, ValueError) as exc:
        return None, f"user_triggers.context is not valid JSON: {exc}"
    if not isinstance(parsed, dict):
        return None, "user_triggers.context must be a JSON object (event data must be a hash)"
    return parsed, ""


def identify_item(person_id: str, attributes: dict[str, Any], synced_at: int) -> dict[str, Any]:
    return {
        "type": "person",
        "identifiers": {"id": person_id},
        "action": "identify",
        "timestamp": synced_at,
        "attributes": {**attributes, SYNCED_AT_ATTRIBUTE: synced_at},
    }


def event_item(event: EventSpec) -> dict[str, Any]:
    return {
        "type": "person",
        "identifiers": {"id": event.person_id},
        "action": "event",
        "name": event.name,
        "id": event.event_id,
        "timestamp": event.timestamp,
        "attributes": event.data or {},
    }
