"""What each person should look like in the destination, and which events to emit.

Reads the contract tables (docs/contracts.md): `user_segments` for the sync date, the latest
`user_scores` row per user on or before it, `segment_membership` transitions and
`user_triggers` firings inside the event window. Values are rounded so model noise below the
shown precision does not produce endless diffs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from contracts.models import KINDS

from ..segments.reasons import REASONS_TEXT_SQL
from ..warehouse import table_exists
from .ids import event_ulid
from .reason_text import action_band_sql, banded_kinds

SYNCED_AT_ATTRIBUTE = "segflow_synced_at"
SEGMENT_ATTRIBUTE_PREFIX = "segment_"
REASONS_ATTRIBUTE = "segment_reasons"
TEXT_COLUMNS = (
    "primary_segment",
    "onboarding_flow",
    "next_block",
    "experiment",
    "experiment_variant",
)
# Reason codes go out only in the kind's action band (reason_text.py): a low-risk user's
# "inactive_14d" is nothing to act on, and leaving it out spares a diff per model wobble.
REASON_COLUMNS = {reasons: kind for kind, (_, reasons) in banded_kinds().items()}
SCORE_TEXT_COLUMNS = (
    *(spec.band_column for spec in KINDS.values() if spec.band_column),
    *REASON_COLUMNS,
    *(spec.model_version_column for spec in KINDS.values()),
)
# Probabilities are rounded to probability_decimals, money to money_decimals.
PROBABILITY_COLUMNS = tuple(
    spec.score_column for spec in KINDS.values() if spec.task == "classification"
)
MONEY_COLUMNS = tuple(spec.score_column for spec in KINDS.values() if spec.task == "regression")
# Attributes that only restate a model's output: its number and its version. A person whose
# only changes are among these is still sent, but is no targeting change for the circuit
# breaker (daily score jitter moves a third of the probabilities by a point; a new champion
# changes every version). Bands, reasons, segments, flows, next block and experiment arms are
# targeting: who gets which campaign or message.
SCORE_ONLY_ATTRIBUTES = (
    *PROBABILITY_COLUMNS,
    *MONEY_COLUMNS,
    *(spec.model_version_column for spec in KINDS.values()),
)


@dataclass(frozen=True)
class PayloadOptions:
    """Rounding and event window. Probabilities at 2 dp (a percentage point) are what a
    Customer.io segment rule can usefully compare; finer precision changes daily for most users
    and would re-send everyone (and trip the circuit breaker). LTV is sent in whole units."""

    probability_decimals: int = 2
    money_decimals: int = 0
    event_lookback_days: int = 3  # campaigns only trigger for events <= 72 h old
    # `segment_reasons` attribute: which rule arm put the person in each segment (opt-in:
    # a long text per person, and a rule edit changes it for every member).
    segment_reasons: bool = False


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


def diff_attributes(previous: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Attributes to send so the destination goes from `previous` to `desired`: changed or
    new values, and "" (the API's documented removal) for attributes no longer present.
    Values compare with their JSON type (1 and True differ), as the destination sees them."""
    changes = {
        name: value
        for name, value in desired.items()
        if name not in previous
        or type(previous[name]) is not type(value)
        or previous[name] != value
    }
    for name in previous:
        if name not in desired:
            changes[name] = ""
    return changes


def without_score_only_sql(payload_sql: str) -> str:
    """SQL for the canonical payload text `payload_sql` with SCORE_ONLY_ATTRIBUTES removed
    (a JSON merge patch setting them to null; the other members keep their order), so two
    payloads that differ only in scores give the same text."""
    patch = json.dumps(dict.fromkeys(SCORE_ONLY_ATTRIBUTES), separators=(",", ":"))
    return f"json_merge_patch({payload_sql}, '{patch}')::VARCHAR"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text != "" else None


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns "
        "where table_schema = 'main' and table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def latest_segment_date(conn: duckdb.DuckDBPyConnection) -> date | None:
    if not table_exists(conn, "main", "user_segments"):
        raise MissingInputError(
            "table main.user_segments does not exist: run the segments step first"
        )
    row = conn.execute("select max(segment_date) from main.user_segments").fetchone()
    return row[0] if row else None


# Each person of user_segments on $as_of: their latest user_scores row on or before it. The
# day's own rows, plus earlier rows only for people with none that day, ranked: the same rows
# as ranking every stored score (11M rows at 100k users x 180 days) for a tenth of the work.
LATEST_SCORES_SQL = """
    select * from (
        select * from main.user_scores where score_date = $as_of
        union all
        select * from main.user_scores where score_date < $as_of and user_id in (
            select user_id from main.user_segments where segment_date = $as_of
            except select user_id from main.user_scores where score_date = $as_of)
    ) qualify row_number() over (partition by user_id order by score_date desc) = 1"""


def _json_member(name: str, value_sql: str) -> str:
    """SQL for the text `"name":<json value>`, NULL when the value is NULL (attribute omitted)."""
    return f"""'{json.dumps(name)}:' || to_json({value_sql})"""


def desired_people_sql(conn: duckdb.DuckDBPyConnection, options: PayloadOptions) -> str:
    """A query (parameter `$as_of`) with one row per user_segments row of that date:
    `person_id` (NULL when blank) and `payload`, the person's segflow attributes as a canonical
    JSON object text ('{}' for a person in no segment: everything cleared).

    Built set-based in DuckDB so 100k people cost one query, not 100k Python dicts. Canonical
    = members sorted as text, so equal attributes always give equal text (and md5). Rounding
    is round-half-even like Python's round(); text values are omitted when NULL or empty."""
    if not table_exists(conn, "main", "user_segments"):
        raise MissingInputError(
            "table main.user_segments does not exist: run the segments step first"
        )
    segment_cols = _columns(conn, "user_segments")
    score_cols = (
        _columns(conn, "user_scores") if table_exists(conn, "main", "user_scores") else set()
    )
    members = []
    for column in TEXT_COLUMNS:
        if column in segment_cols:
            members.append(_json_member(column, f"nullif(us.{column}::VARCHAR, '')"))
    for column in SCORE_TEXT_COLUMNS:
        if column in score_cols and column not in REASON_COLUMNS:
            members.append(_json_member(column, f"nullif(sc.{column}::VARCHAR, '')"))
    for column, kind in REASON_COLUMNS.items():
        if {column, KINDS[kind].band_column} <= score_cols:
            members.append(_json_member(column, action_band_sql(kind, "sc")))
    for column in PROBABILITY_COLUMNS:
        if column in score_cols:
            value = f"sc.{column}::DOUBLE"
            members.append(
                _json_member(
                    column,
                    f"case when isfinite({value}) then "
                    f"round_even({value}, {options.probability_decimals}) end",
                )
            )
    for column in MONEY_COLUMNS:
        if column not in score_cols:
            continue
        rounded = f"round_even(sc.{column}::DOUBLE, {options.money_decimals})"
        if options.money_decimals == 0:
            rounded = f"try_cast({rounded} as BIGINT)"
        members.append(
            _json_member(column, f"case when isfinite(sc.{column}::DOUBLE) then {rounded} end")
        )
    scores_join = (
        f"left join ({LATEST_SCORES_SQL}) sc on sc.user_id = us.user_id" if score_cols else ""
    )
    reasons_join = ""
    if options.segment_reasons and table_exists(conn, "main", "segment_reasons"):
        members.append(_json_member(REASONS_ATTRIBUTE, "nullif(rs.reasons, '')"))
        reasons_join = (
            f"left join (select user_id, {REASONS_TEXT_SQL} as reasons from main.segment_reasons "
            "where segment_date = $as_of group by user_id) rs on rs.user_id = us.user_id"
        )
    columns = [f"m{i}" for i in range(len(members))]
    return f"""
        select person_id, case when len(segs) = 0 then '{{}}'
            else '{{' || {_ordered_members(members, columns)} || '}}' end as payload
        from (
            select nullif(us.user_id::VARCHAR, '') as person_id,
                coalesce(list_sort(list_distinct(list_filter(
                    list_transform(us.segments, lambda s: s::VARCHAR),
                    lambda s: s is not null and s <> ''))), []) as segs
                {"".join(f", {m} as {c}" for m, c in zip(members, columns, strict=True))}
            from main.user_segments us {scores_join} {reasons_join}
            where us.segment_date = $as_of
        )"""


# Segment names made only of these characters need no JSON escaping and sort above '"', so
# their members `"segment_<name>":true` sort as the names do (see _ordered_members).
PLAIN_SEGMENT_NAME = "[A-Za-z0-9_.-]*"


def _ordered_members(members: list[str], columns: list[str]) -> str:
    """SQL for the members' text joined in canonical order (sorted as text; NULLs left out).

    The general way sorts every row's member list. The members other than the segments
    have fixed names, so their order is known here: each `"name":` sorts wholly before or
    after every `"segment_...` member, and the segment members follow their sorted names
    when the names are plain (PLAIN_SEGMENT_NAME): then one concat_ws gives the same text
    for a third of the work. Rows with other names, or a fixed name that itself starts with
    "segment_", take the general way."""
    segment_prefix = json.dumps(SEGMENT_ATTRIBUTE_PREFIX)[:-1]  # '"segment_'
    segments_member = """'"segments":' || to_json(array_to_string(segs, ','))"""
    general = (
        f"array_to_string(list_sort(list_filter([{', '.join(columns) or 'NULL'}]::VARCHAR[] || "
        f"[{segments_member}] || list_transform(segs, lambda s: "
        f"to_json('{SEGMENT_ATTRIBUTE_PREFIX}' || s) || ':true'), lambda m: m is not null)), ',')"
    )
    keys = [_member_key(m) for m in members]
    if any(key.startswith(segment_prefix) for key in keys):
        return general
    ordered = sorted([*zip(keys, columns, strict=True), ('"segments":', segments_member)])
    block = (
        f"""'{segment_prefix}' || array_to_string(segs, '":true,{segment_prefix}') || '":true'"""
    )
    before = [sql for key, sql in ordered if key < segment_prefix]
    after = [sql for key, sql in ordered if key > segment_prefix]
    fast = f"concat_ws(',', {', '.join([*before, block, *after])})"
    return (
        f"case when regexp_full_match(array_to_string(segs, ''), '{PLAIN_SEGMENT_NAME}') "
        f"then {fast} else {general} end"
    )


def _member_key(member_sql: str) -> str:
    """The constant `"name":` text a _json_member() SQL expression starts with."""
    quoted = member_sql[1 : member_sql.index(":' || ")].replace("''", "'")
    return quoted + ":"


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
                events.append(
                    EventSpec(
                        person_id,
                        name,
                        ts,
                        event_ulid(person_id, name, ts, str(segment)),
                        {"segment": str(segment)},
                        "" if person_id else "segment_membership row with a null user_id",
                    )
                )
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
            events.append(
                EventSpec(person_id, name, ts, event_ulid(person_id, name, ts), data, error)
            )
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


def identify_encoded(person_id: str, attributes_json: str, synced_at: int) -> bytes:
    """The encode_item() bytes of identify_item(person_id, attributes, synced_at), from the
    attributes' JSON object text (e.g. the canonical payload straight from DuckDB), without
    re-encoding every attribute in Python."""
    members = attributes_json.strip()[1:-1].strip()
    synced = f'"{SYNCED_AT_ATTRIBUTE}":{synced_at}'
    person = json.dumps(person_id, ensure_ascii=False)
    return (
        f'{{"type":"person","identifiers":{{"id":{person}}},"action":"identify",'
        f'"timestamp":{synced_at},"attributes":{{{members + "," if members else ""}{synced}}}}}'
    ).encode()


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
