"""Segment-spec messages as the collector accepts them and the stream carries them.

The row rules are the batch loader's (orchestration/sources/load.py, reason codes of
docs/contracts.md) for what a single message can break: a missing key (`null_key`), a type
outside track/identify/page or a track event outside the tracking plan (`unknown_event`), an
unreadable timestamp (`wrong_type`). The known events come from the same tracking plan
(`contracts.tracking_plan`), and tests/test_realtime_collect.py loads the
drained landing file with the real loader and asserts it quarantines the same messages with
the same codes and details, so the two paths cannot drift apart silently.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from orchestration.sources.mappings import DEFAULT_VALUE_MAPS

EVENT_TYPES = ("track", "identify", "page")
# the loader's value map for `type` (Segment `screen` calls are activity like `page`)
TYPE_MAP: dict[str, str] = DEFAULT_VALUE_MAPS["events"]["type"]
FUTURE_TOLERANCE = timedelta(minutes=15)  # the loader's (sources/load.py FUTURE_TOLERANCE)
QUARANTINE = "_quarantine"  # key added to a stream message the consumer must not apply


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    """Segment ISO-8601 timestamp -> aware UTC datetime (naive input is UTC); None if bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _duckdb_ts(moment: datetime) -> str:
    """A naive-UTC timestamp as DuckDB prints it in the loader's reason details."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return text


def reject_reason(
    message: dict, known_events: Iterable[str], late_days: int = 3
) -> tuple[str, str] | None:
    """(reason_code, reason_detail) the batch loader would give this message, or None.
    Time rules use `receivedAt` as "now" and as the landing partition day."""
    if _text(message.get("messageId")) is None:
        return "null_key", "message_id is missing or empty (it is a key of events)"
    if _text(message.get("userId")) is None and _text(message.get("anonymousId")) is None:
        return "null_key", "both user_id and anonymous_id are missing or empty"
    kind = _text(message.get("type"))
    if kind is None:
        return "missing_required_column", (
            "field type is missing or empty (required: message_id, type, timestamp)"
        )
    moment = parse_time(message.get("timestamp"))
    if moment is None:
        return "wrong_type", (
            f"column timestamp: expected a timestamp (ISO 8601), found {str(message.get('timestamp'))[:100]}"
        )
    kind = TYPE_MAP.get(kind, kind)
    if kind not in EVENT_TYPES:
        return "unknown_event", f"type {kind} is not one of track, identify, page"
    event = _text(message.get("event"))
    if kind == "track" and (event is None or event not in known_events):
        shown = "null" if event is None else f"'{event}'"
        return "unknown_event", (
            f"track event {shown} is not in the tracking plan (dbt_project.yml vars.tracking_plan)"
        )
    received = parse_time(message.get("receivedAt"))
    if received is not None:
        if moment > received + FUTURE_TOLERANCE:
            return "timestamp_in_future", (
                f"timestamp {_duckdb_ts(moment)} is in the future (now {_duckdb_ts(received)})"
            )
        if moment.date() < received.date() - timedelta(days=late_days):
            return "outside_late_window", (
                f"timestamp {_duckdb_ts(moment)} is more than {late_days} days before "
                f"partition {received.date().isoformat()}"
            )
    return None


def normalise(message: dict, kind: str | None, received: datetime) -> dict:
    """Fill what Segment's API fills server-side: type (from the endpoint), messageId,
    receivedAt, and timestamp (= receivedAt when the client sent none)."""
    out = dict(message)
    if kind is not None:
        out["type"] = kind
    out.setdefault("messageId", f"segflow-{uuid.uuid4()}")
    out["receivedAt"] = utc_iso(received)
    if not out.get("timestamp"):
        out["timestamp"] = out.get("originalTimestamp") or out["receivedAt"]
    out.pop("writeKey", None)  # a secret never goes to the stream or the landing files
    return out


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode()
