"""Diff-based sync of segflow attributes and events to one destination.

One run: classify people set-based in DuckDB against what the destination last acknowledged
(`sync_state`, see changes.py), then stream items for changed people only (only changed
attributes, "" for what is gone; built while earlier batches are in flight) followed by
not-yet-acknowledged events. Batches go out a few at a time when the destination allows it;
each batch's outcomes are journaled, and the journal is folded into the state tables at the
end (or at the start of the next run after a kill; see state.py). A re-run therefore sends
exactly what was not acknowledged.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from .batching import pack_batches
from .changes import PEOPLE_TABLE, classify_people
from .destinations.base import (
    Destination,
    DestinationAuthError,
    DestinationRefused,
    ItemResult,
    OutgoingItem,
)
from .limits import (
    MAX_ATTRIBUTE_NAME_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ID_BYTES,
    check_item,
    encode_item,
)
from .oversize import OversizeCounts, fit_attributes
from .payload import (
    EventSpec,
    PayloadOptions,
    desired_events,
    diff_attributes,
    event_item,
    identify_encoded,
    identify_item,
    latest_segment_date,
)
from .privacy import suppressed_ids
from .redact import redact
from .report import FAILED_ROW_COLUMNS, SyncReport
from .state import (
    JournalWriter,
    delete_stale_failures,
    ensure_tables,
    fold_journal,
    fold_statements,
    has_journal,
    load_acked_event_ids,
    load_failures,
    record_run,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncOptions:
    """Safety and retry knobs. The circuit breaker compares the people whose acknowledged
    attributes would change or be cleared with the people the destination already knows
    (non-empty sync_state); the first sync (nothing known yet) is exempt unless
    `breaker_on_first_sync`, and populations below `breaker_min_known` are never blocked."""

    max_change_share: float = 0.5
    breaker_on_first_sync: bool = False
    breaker_min_known: int = 0
    max_attempts: int = 5
    sample_size: int = 5
    payload: PayloadOptions = field(default_factory=PayloadOptions)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SyncOptions:
        options = cls(
            max_change_share=settings.sync_max_change_share, max_attempts=settings.sync_max_attempts
        )
        return replace(options, **overrides)


@dataclass
class _Pending:
    item: OutgoingItem
    attempts_before: int
    retried: bool
    ack: dict[str, Any] = field(default_factory=dict)  # journal fields once acknowledged


@dataclass
class _Plan:
    """What a run would send. People are a generator (built while batches are in flight);
    items that break a documented limit land in `local_failures` as they are found."""

    people: Iterator[_Pending]
    people_count: int = 0  # people to build items for (before local limit checks)
    events: list[_Pending] = field(default_factory=list)
    local_failures: list[tuple[_Pending, str, str, str]] = field(default_factory=list)


def _outgoing(kind: str, key: str, person_id: str, payload: dict[str, Any]) -> OutgoingItem:
    return OutgoingItem(kind, key, person_id, payload, encode_item(payload))


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def sync(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    as_of: date | None = None,
    latest_date: date | None = None,
    *,
    dry_run: bool = False,
    override_breaker: bool = False,
    options: SyncOptions | None = None,
    now: datetime | None = None,
) -> SyncReport:
    """Sync `as_of` (default: the latest segment date) to `destination`.

    A backfill (`as_of` earlier than `latest_date`, default max(user_segments.segment_date))
    sends nothing (`status="skipped_backfill"`). `dry_run` reports what would change and
    writes nothing. Raises DestinationAuthError on rejected credentials (after logging the run).
    """
    options = options or SyncOptions()
    started = (now or datetime.now(UTC)).astimezone(UTC)
    clock0 = time.perf_counter()
    run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    latest_date = latest_date or latest_segment_date(conn)
    as_of = as_of or latest_date
    report = SyncReport(
        run_id=run_id,
        destination=destination.name,
        as_of=as_of,
        latest_date=latest_date,
        dry_run=dry_run,
        started_at=started.replace(tzinfo=None),
    )

    def finish(status: str, message: str = "") -> SyncReport:
        report.status = status
        report.message = message or report.message
        report.finished_at = _utcnow()
        report.duration_s = round(time.perf_counter() - clock0, 3)
        if not dry_run:
            ensure_tables(conn)
            record_run(conn, report.sync_runs_row())
        log.info("sync %s to %s: %s %s", run_id, destination.name, status, report.message)
        return report

    if as_of is None:
        return finish("ok", "user_segments is empty: nothing to sync")
    if latest_date is not None and as_of < latest_date:
        return finish(
            "skipped_backfill",
            f"as_of {as_of} is before the latest segment date "
            f"{latest_date}: backfills recompute segments but never send",
        )

    prepare = getattr(destination, "prepare", None)
    if prepare is not None:
        try:
            prepare(conn, as_of)
        except DestinationRefused as exc:
            return finish("refused", str(exc))

    if dry_run:
        # A killed run's journal is folded inside a transaction that is rolled back, so the
        # dry run sees what a real run would and writes nothing.
        unfolded = has_journal(conn, destination.name)
        if unfolded:
            conn.execute("begin transaction")
            fold_statements(conn, destination.name)
        try:
            plan = _plan(conn, destination, as_of, options, report, int(started.timestamp()))
        finally:
            if unfolded:
                conn.execute("rollback")
            conn.execute(f"drop table if exists {PEOPLE_TABLE}")
        people = list(plan.people)
        sendable = people + plan.events
        report.items_failed_locally = len(plan.local_failures)
        report.samples = [p.item.payload for p in people[: options.sample_size]] + [
            p.item.payload for p in plan.events[: options.sample_size]
        ]
        report.failed_rows = _failed_frame(
            [
                _failure_row(p, r, f, m, options.max_attempts, local=True)
                for p, r, f, m in plan.local_failures
            ]
        )
        return finish("dry_run", f"would send {len(sendable)} items")

    ensure_tables(conn)
    fold_journal(conn, destination.name)  # acknowledgements of a run that was killed
    try:
        plan = _plan(conn, destination, as_of, options, report, int(started.timestamp()))
        if report.breaker["tripped"] and not override_breaker:
            return finish(
                "breaker_tripped",
                (
                    f"circuit breaker: {report.breaker['would_change']} of {report.breaker['known']} "
                    f"known people would change (share {report.breaker['share']:.2f} > max "
                    f"{options.max_change_share}); nothing sent. Check upstream tables, then re-run "
                    "with override_breaker=True to send anyway"
                ),
            )
        delete_stale_failures(conn, destination.name, PEOPLE_TABLE)
    finally:
        conn.execute(f"drop table if exists {PEOPLE_TABLE}")
    failed_rows: list[dict[str, Any]] = []

    stats_before = _stats_snapshot(destination)
    send_clock = time.perf_counter()
    try:
        if plan.people_count or plan.events:
            destination.open_run(run_id, as_of)
            try:
                _send(conn, destination, run_id, report, plan, options, failed_rows)
            finally:
                report.destination_facts = destination.close_run()
        else:  # nothing to send; only journals rows that failed locally
            _send(conn, destination, run_id, report, plan, options, failed_rows)
    except DestinationAuthError as exc:
        _close(conn, report, destination, stats_before, send_clock, failed_rows)
        finish("auth_failed", str(exc))
        raise
    except Exception as exc:
        _close(conn, report, destination, stats_before, send_clock, failed_rows)
        finish("destination_unavailable", redact(f"{type(exc).__name__}: {exc}"))
        raise
    _close(conn, report, destination, stats_before, send_clock, failed_rows)
    status = "partial" if failed_rows else "ok"
    return finish(status, f"sent {report.people_sent} people and {report.events_sent} events")


def _plan(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    as_of: date,
    options: SyncOptions,
    report: SyncReport,
    synced_at: int,
) -> _Plan:
    """Classify people (set-based), collect pending events, evaluate the circuit breaker;
    people's items are built lazily by the returned plan."""
    changes = classify_people(conn, destination.name, as_of, options.payload)
    failures = load_failures(conn, destination.name)
    report.people_new = changes.counts["new"]
    report.people_changed = changes.counts["changed"]
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
    plan = _Plan(people=iter(()), people_count=len(to_send))
    limit = getattr(destination, "max_attribute_value_bytes", None)
    plan.people = _people_items(to_send, synced_at, plan.local_failures, limit, report.oversize)
    for key, message in changes.invalid:
        pending = _Pending(
            _outgoing("person", key, "" if key == "<null>" else key, {}),
            _attempts(failures, "person", key),
            False,
        )
        plan.local_failures.append((pending, "invalid_input", "user_id", message))

    lookback = max(1, options.payload.event_lookback_days)
    acked = load_acked_event_ids(
        conn, destination.name, _unix(as_of - timedelta(days=lookback - 1))
    )
    event_keys: set[str] = set()
    events: list[_Pending] = []
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
                _Pending(
                    _outgoing("event", key, failure.person_id or "", item),
                    failure.attempts,
                    True,
                    {
                        "event_name": str(item.get("name", "")),
                        "event_timestamp": int(item.get("timestamp") or 0),
                    },
                )
            )
    plan.events = [p for p in events if _within_limits(p, plan.local_failures)]
    report.events_pending = len(plan.events)
    _evaluate_breaker(report, changes.known, options)
    return plan


def _people_items(
    rows: list[dict[str, Any]],
    synced_at: int,
    local_failures: list[tuple[_Pending, str, str, str]],
    value_limit: int | None = None,
    oversize: OversizeCounts | None = None,
) -> Iterator[_Pending]:
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
        pending = _Pending(
            item,
            row["attempts"] if live else 0,
            live,
            {"payload_hash": row["payload_hash"], "payload": desired_text},
        )
        if _within_limits(pending, local_failures):
            yield pending


def _within_limits(pending: _Pending, local_failures: list[tuple[_Pending, str, str, str]]) -> bool:
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


def _send(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    run_id: str,
    report: SyncReport,
    plan: _Plan,
    options: SyncOptions,
    failed_rows: list[dict[str, Any]],
) -> None:
    """Send people, then events (a campaign triggered by an event sees the new attributes),
    with up to `destination.max_in_flight` batches in flight. Outcomes go to a JournalWriter
    (background commits), so neither building nor sending waits for the journal."""
    workers = max(1, int(getattr(destination, "max_in_flight", 1)))
    by_key: dict[tuple[str, str], _Pending] = {}
    in_flight: dict[Future, list[OutgoingItem]] = {}
    unjournaled: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def collect(return_when: str) -> None:
        done, _ = wait(in_flight, return_when=return_when)
        for future in done:
            batch = in_flight.pop(future)
            try:
                results = future.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised once the rest is journaled
                errors.append(exc)
                continue
            unjournaled.extend(
                _outcomes(destination.name, report, batch, results, by_key, options, failed_rows)
            )

    def journal() -> None:
        while plan.local_failures:  # found while building items: they fail without sending
            row = _failure_row(*plan.local_failures.pop(), options.max_attempts, local=True)
            report.items_failed_locally += 1
            failed_rows.append(row)
            _count_failure(report, row)
            unjournaled.append(_journal_row(row))
        writer.append(unjournaled)
        unjournaled.clear()

    def items(group: Iterator[_Pending] | list[_Pending]) -> Iterator[OutgoingItem]:
        for pending in group:
            by_key[(pending.item.kind, pending.item.key)] = pending
            yield pending.item

    writer = JournalWriter(conn, destination.name, run_id)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync-send") as pool:
            for group in (plan.people, plan.events):
                for batch in pack_batches(
                    items(group), destination.max_items_per_batch, destination.max_batch_bytes
                ):
                    if len(in_flight) >= workers:
                        collect(FIRST_COMPLETED)
                    if errors:
                        break
                    in_flight[pool.submit(destination.send, batch)] = batch
                    journal()
                if in_flight:
                    collect(ALL_COMPLETED)
                journal()
                if errors:
                    raise errors[0]
    finally:
        writer.close()  # everything acknowledged is committed before the fold


def _outcomes(
    destination_name: str,
    report: SyncReport,
    batch: list[OutgoingItem],
    results: list[ItemResult],
    by_key: dict,
    options: SyncOptions,
    failed_rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Count one batch's results into the report; return its journal rows."""
    if len(results) != len(batch) or any(
        r.key != i.key for r, i in zip(results, batch, strict=True)
    ):
        raise RuntimeError(
            f"destination {destination_name} returned results that do not match "
            "the batch (one result per item, in batch order)"
        )
    rows = []
    for item, result in zip(batch, results, strict=True):
        pending = by_key[(item.kind, item.key)]
        is_person = item.kind == "person"
        if is_person:
            report.people_sent += 1
        else:
            report.events_sent += 1
        if result.ok:
            if pending.retried:
                report.items_retried += 1
            if is_person:
                report.people_succeeded += 1
            else:
                report.events_succeeded += 1
            rows.append(
                {
                    "item_kind": item.kind,
                    "item_key": item.key,
                    "person_id": item.person_id,
                    "ok": True,
                    **pending.ack,
                }
            )
            by_key.pop((item.kind, item.key))
            continue
        if is_person:
            report.people_failed += 1
        else:
            report.events_failed += 1
        by_key.pop((item.kind, item.key))
        row = _failure_row(
            pending, result.reason, result.field, result.message, options.max_attempts, local=False
        )
        failed_rows.append(row)
        _count_failure(report, row)
        rows.append(_journal_row(row))
    return rows


def _attempts(failures: dict, kind: str, key: str) -> int:
    failure = failures.get((kind, key))
    return failure.attempts if failure and not failure.given_up else 0


def _event_pending(event: EventSpec, attempts: int, retried: bool) -> _Pending:
    return _Pending(
        _outgoing("event", event.event_id, event.person_id, event_item(event)),
        attempts,
        retried,
        {"event_name": event.name, "event_timestamp": event.timestamp},
    )


def _evaluate_breaker(report: SyncReport, known: int, options: SyncOptions) -> None:
    if known == 0:
        would_change = report.people_new
        share = 1.0 if would_change else 0.0
        applies = options.breaker_on_first_sync
    else:
        would_change = report.people_changed + report.people_cleared
        share = would_change / known
        applies = known >= options.breaker_min_known
    report.breaker = {
        "known": known,
        "would_change": would_change,
        "share": round(share, 4),
        "max_change_share": options.max_change_share,
        "first_sync": known == 0,
        "tripped": bool(applies and share > options.max_change_share),
    }


def _failure_row(
    p: _Pending, reason: str, field_name: str, message: str, max_attempts: int, local: bool
) -> dict[str, Any]:
    attempts = p.attempts_before + 1
    return {
        "item_kind": p.item.kind,
        "item_key": p.item.key,
        "person_id": p.item.person_id,
        "reason": reason,
        "field": field_name,
        "message": message,
        "attempts": attempts,
        "given_up": attempts >= max_attempts,
        "local": local,
        "_item": p.item.payload,
        "_retried": p.retried,
        "_hash": p.ack.get("payload_hash"),
    }


def _journal_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "item_kind": row["item_kind"],
        "item_key": row["item_key"],
        "person_id": row["person_id"],
        "ok": False,
        "reason": row["reason"],
        "field": row["field"],
        "message": row["message"],
        "attempts": row["attempts"],
        "given_up": row["given_up"],
        "payload_hash": row["_hash"],
        "item": json.dumps(row["_item"], ensure_ascii=False),
    }


def _count_failure(report: SyncReport, row: dict[str, Any]) -> None:
    report.failures_by_reason[row["reason"]] = report.failures_by_reason.get(row["reason"], 0) + 1
    if row["given_up"]:
        report.items_given_up += 1
    if row["_retried"]:
        report.items_retried += 1


def _stats_snapshot(destination: Destination) -> tuple[int, int, int, int]:
    s = destination.stats
    return s.requests, s.request_retries, s.bytes_sent, s.batch_splits


def _close(
    conn: duckdb.DuckDBPyConnection,
    report: SyncReport,
    destination: Destination,
    before: tuple[int, int, int, int],
    send_clock: float,
    failed_rows: list[dict[str, Any]],
) -> None:
    """Transport figures, failed rows, and the fold of this run's journal into the state."""
    after = _stats_snapshot(destination)
    report.requests, report.request_retries, report.bytes_sent, report.batch_splits = (
        a - b for a, b in zip(after, before, strict=True)
    )
    report.send_seconds = round(time.perf_counter() - send_clock, 3)
    report.failed_rows = _failed_frame(failed_rows)
    fold_journal(conn, report.destination)


def _failed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{c: r[c] for c in FAILED_ROW_COLUMNS} for r in rows], columns=FAILED_ROW_COLUMNS
    )
