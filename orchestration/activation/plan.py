"""What one sync run would send: people classified set-based (changes.py) with their items
built lazily, not-yet-acknowledged events, failed events retried from their stored item, items
that break a documented limit set aside as local failures, and the circuit breaker's figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from .changes import classify_people
from .destinations.base import Destination, OutgoingItem
from .limits import (
    MAX_ATTRIBUTE_NAME_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ID_BYTES,
    check_item,
    encode_item,
)
from .options import SyncOptions
from .oversize import OversizeCounts, fit_attributes
from .payload import (
    EventSpec,
    desired_events,
    diff_attributes,
    event_item,
    identify_encoded,
    identify_item,
)
from .privacy import suppressed_ids
from .report import SyncReport
from .state import load_acked_event_ids, load_failures

LocalFailure = tuple["Pending", str, str, str]


@dataclass
class Pending:
    item: OutgoingItem
    attempts_before: int
    retried: bool
    ack: dict[str, Any] = field(default_factory=dict)  # journal fields once acknowledged


@dataclass
class Plan:
    """What a run would send. People are a generator (built while batches are in flight);
    items that break a documented limit land in `local_failures` as they are found."""

    people: Iterator[Pending]
    people_count: int = 0  # people to build items for (before local limit checks)
    events: list[Pending] = field(default_factory=list)
    local_failures: list[LocalFailure] = field(default_factory=list)


def outgoing(kind: str, key: str, person_id: str, payload: dict[str, Any]) -> OutgoingItem:
    return OutgoingItem(kind, key, person_id, payload, encode_item(payload))


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def build_plan(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    as_of: date,
    options: SyncOptions,
    report: SyncReport,
    synced_at: int,
) -> Plan:
    """Classify people (set-based), collect pending events, evaluate the circuit breaker;
    people's items are built lazily by the returned plan."""
    changes = classify_people(conn, destination.name, as_of, options.payload)
    failures = load_failures(conn, destination.name)
    report.people_new = changes.counts["new"]
    report.people_changed = changes.counts["changed"]
    report.people_changed_scores_only = changes.scores_only
    report.people_cleared = changes.counts["cleared"]
    report.people_unchanged = changes.counts["unchanged"]
    report.people_considered = sum(changes.counts.values()) + len(changes.invalid)
    suppressed = suppressed_ids(conn)  # privacy requests: never sent again
    report.people_suppressed = sum(1 for row in changes.changed if row["person_id"] in suppressed)
    to_send = [
        row
        for row in changes.changed
        if not (row["given_up"] and row["same_payload_failed"])
        and row["person_id"] not in suppressed
    ]
    report.items_skipped_given_up += len(changes.changed) - len(to_send) - report.people_suppressed
    plan = Plan(people=iter(()), people_count=len(to_send))
    limit = getattr(destination, "max_attribute_value_bytes", None)
    plan.people = _people_items(to_send, synced_at, plan.local_failures, limit, report.oversize)
    for key, message in changes.invalid:
        pending = Pending(
            outgoing("person", key, "" if key == "<null>" else key, {}),
            _attempts(failures, "person", key),
            False,
        )
        plan.local_failures.append((pending, "invalid_input", "user_id", message))

    lookback = max(1, options.payload.event_lookback_days)
    acked = load_acked_event_ids(
        conn, destination.name, _unix(as_of - timedelta(days=lookback - 1))
    )
    event_keys: set[str] = set()
    events: list[Pending] = []
    for event in desired_events(conn, as_of, options.payload):
        if event.event_id in event_keys or event.person_id in suppressed:
            continue  # the same fact twice in the input, or a suppressed person
        event_keys.add(event.event_id)
        report.events_considered += 1
        if event.event_id in acked:
            report.events_already_acked += 1
            continue
        failure = failures.get(("event", event.event_id))
        if failure and failure.given_up:
            report.items_skipped_given_up += 1
            continue
        pending = _event_pending(event, failure.attempts if failure else 0, failure is not None)
        if event.error:
            plan.local_failures.append((pending, "invalid_input", "attributes", event.error))
        else:
            events.append(pending)
    for (kind, key), failure in failures.items():
        # Failed events older than the window are retried from their stored item.
        if (
            kind == "event"
            and key not in event_keys
            and not failure.given_up
            and failure.item
            and failure.person_id not in suppressed
        ):
            item = failure.item
            events.append(
                Pending(
                    outgoing("event", key, failure.person_id or "", item),
                    failure.attempts,
                    True,
                    {
                        "event_name": str(item.get("name", "")),
                        "event_timestamp": int(item.get("timestamp") or 0),
                    },
                )
            )
    plan.events = [p for p in events if within_limits(p, plan.local_failures)]
    report.events_pending = len(plan.events)
    _evaluate_breaker(report, changes.known, options)
    return plan


def _people_items(
    rows: list[dict[str, Any]],
    synced_at: int,
    local_failures: list[LocalFailure],
    value_limit: int | None = None,
    oversize: OversizeCounts | None = None,
) -> Iterator[Pending]:
    """Identify items for changed people: a new person's canonical payload text goes out as
    is; a known person gets only the attributes that differ ("" for removed ones). A value
    over the destination's limit is truncated or dropped alone (oversize.py); the rest goes."""
    oversize = oversize if oversize is not None else OversizeCounts()
    for row in rows:
        pid, desired_text = row["person_id"], row["payload"]
        desired = json.loads(desired_text)
        if row["previous"] is None:
            attributes, attributes_text = desired, desired_text
        else:
            attributes = diff_attributes(json.loads(row["previous"]), desired)
            attributes_text = json.dumps(attributes, separators=(",", ":"), ensure_ascii=False)
        fitted = fit_attributes(attributes, value_limit, oversize)
        if fitted is not attributes:
            attributes = fitted
            attributes_text = json.dumps(attributes, separators=(",", ":"), ensure_ascii=False)
        item = OutgoingItem(
            "person",
            pid,
            pid,
            identify_item(pid, attributes, synced_at),
            identify_encoded(pid, attributes_text, synced_at),
        )
        live = not row["given_up"] and row["attempts"] is not None
        pending = Pending(
            item,
            row["attempts"] if live else 0,
            live,
            {"payload_hash": row["payload_hash"], "payload": desired_text},
        )
        if within_limits(pending, local_failures):
            yield pending


def within_limits(pending: Pending, local_failures: list[LocalFailure]) -> bool:
    if _plainly_within_limits(pending.item):
        return True
    violation = check_item(pending.item.payload, pending.item.encoded)
    if violation:
        local_failures.append((pending, violation.reason, violation.field, violation.message))
    return violation is None


def _plainly_within_limits(item: OutgoingItem) -> bool:
    """Cheap sufficient test for check_item() passing (it runs for every changed person, on
    the thread that also feeds the senders): an identify item whose encoding holds only
    scalar attribute values (no nested object or list) and is at most
    MAX_ATTRIBUTE_VALUE_BYTES long cannot carry a longer value, more than
    MAX_ATTRIBUTES_PER_CALL attributes or more than MAX_ITEM_BYTES; only the id and the
    attribute names are left to check. Anything else goes through check_item()."""
    encoded = item.encoded
    if (
        len(encoded) > MAX_ATTRIBUTE_VALUE_BYTES
        or encoded.count(b"{") != 3
        or b"[" in encoded
        or item.payload.get("action") != "identify"
    ):
        return False
    person_id = item.payload.get("identifiers", {}).get("id")
    if not isinstance(person_id, str) or not person_id or len(person_id) * 4 > MAX_ID_BYTES:
        return False
    attributes = item.payload.get("attributes")
    return isinstance(attributes, dict) and not any(
        name.startswith("_") or len(name) * 4 > MAX_ATTRIBUTE_NAME_BYTES for name in attributes
    )


def _attempts(failures: dict, kind: str, key: str) -> int:
    failure = failures.get((kind, key))
    return failure.attempts if failure and not failure.given_up else 0


def _event_pending(event: EventSpec, attempts: int, retried: bool) -> Pending:
    return Pending(
        outgoing("event", event.event_id, event.person_id, event_item(event)),
        attempts,
        retried,
        {"event_name": event.name, "event_timestamp": event.timestamp},
    )


def _evaluate_breaker(report: SyncReport, known: int, options: SyncOptions) -> None:
    """The breaker guards against mass mis-targeting: it counts the known people whose
    targeting would change (segments, flow, bands, reasons, experiment arm) or be cleared,
    not those whose only change is a score or model version (still sent; counted apart)."""
    if known == 0:
        would_change = report.people_new
        share = 1.0 if would_change else 0.0
        applies = options.breaker_on_first_sync
    else:
        would_change = (
            report.people_changed - report.people_changed_scores_only + report.people_cleared
        )
        share = would_change / known
        applies = known >= options.breaker_min_known
    report.breaker = {
        "known": known,
        "would_change": would_change,
        "scores_only_not_counted": report.people_changed_scores_only if known else 0,
        "share": round(share, 4),
        "max_change_share": options.max_change_share,
        "first_sync": known == 0,
        "tripped": bool(applies and share > options.max_change_share),
    }
