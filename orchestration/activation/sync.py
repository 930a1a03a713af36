"""Diff-based sync of segflow attributes and events to one destination.

One run: compute desired attributes for the sync date, diff them against what the destination
last acknowledged (`sync_state`), send only changed attributes (clearing with "" what is gone)
plus not-yet-acknowledged events, and commit every batch's acknowledgements before the next
batch, so a crash loses nothing and a re-run sends exactly what was not acknowledged.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from .batching import pack_batches
from .destinations.base import Destination, DestinationAuthError, ItemResult, OutgoingItem
from .limits import check_item, encode_item
from .payload import (
    EventSpec,
    PayloadOptions,
    desired_events,
    desired_people,
    diff_attributes,
    event_item,
    identify_item,
    latest_segment_date,
    payload_hash,
)
from .redact import redact
from .report import FAILED_ROW_COLUMNS, SyncReport
from .state import (
    commit_batch,
    ensure_tables,
    load_acked_event_ids,
    load_failures,
    load_state,
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
        options = cls(max_change_share=settings.sync_max_change_share,
                      max_attempts=settings.sync_max_attempts)
        return replace(options, **overrides)


@dataclass
class _Pending:
    item: OutgoingItem
    attempts_before: int
    retried: bool
    payload_hash: str | None = None
    state_payload: str | None = None  # JSON of the full acknowledged attributes after success
    event_name: str = ""
    event_ts: int = 0


def _outgoing(kind: str, key: str, person_id: str, payload: dict[str, Any]) -> OutgoingItem:
    return OutgoingItem(kind, key, person_id, payload, encode_item(payload))


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


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
    report = SyncReport(run_id=run_id, destination=destination.name, as_of=as_of,
                        latest_date=latest_date, dry_run=dry_run, started_at=started.replace(tzinfo=None))

    def finish(status: str, message: str = "") -> SyncReport:
        report.status = status
        report.message = message or report.message
        report.finished_at = datetime.now(UTC).replace(tzinfo=None)
        report.duration_s = round(time.perf_counter() - clock0, 3)
        if not dry_run:
            ensure_tables(conn)
            record_run(conn, report.sync_runs_row())
        log.info("sync %s to %s: %s %s", run_id, destination.name, status, report.message)
        return report

    if as_of is None:
        return finish("ok", "user_segments is empty: nothing to sync")
    if latest_date is not None and as_of < latest_date:
        return finish("skipped_backfill", f"as_of {as_of} is before the latest segment date "
                      f"{latest_date}: backfills recompute segments but never send")
    if not dry_run:
        ensure_tables(conn)

    state = load_state(conn, destination.name)
    failures = load_failures(conn, destination.name)
    synced_at = int(started.timestamp())
    people: list[_Pending] = []
    events: list[_Pending] = []
    local_failures: list[tuple[_Pending, str, str, str]] = []
    seen: set[str] = set()

    def person_pending(pid: str, desired: dict[str, Any], previous: dict[str, Any]) -> None:
        digest = payload_hash(desired)
        failure = failures.get(("person", pid))
        if failure and failure.given_up and failure.payload_hash == digest:
            report.items_skipped_given_up += 1
            return
        live_failure = failure if failure and not failure.given_up else None
        changes = diff_attributes(previous, desired)
        payload = identify_item(pid, changes, synced_at)
        people.append(_Pending(
            _outgoing("person", pid, pid, payload), live_failure.attempts if live_failure else 0,
            live_failure is not None, digest,
            json.dumps(desired, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        ))

    for row in desired_people(conn, as_of, options.payload):
        report.people_considered += 1
        if row.error:
            key = row.person_id or "<null>"
            seen.add(row.person_id)
            pending = _Pending(_outgoing("person", key, row.person_id, {}), _attempts(failures, "person", key), False)
            local_failures.append((pending, "invalid_input", "user_id", row.error))
            continue
        seen.add(row.person_id)
        previous = state.get(row.person_id)
        if (previous and previous.payload_hash == payload_hash(row.attributes)) or (
            previous is None and not row.attributes
        ):
            report.people_unchanged += 1
            continue
        if previous is None:
            report.people_new += 1
        elif not row.attributes:
            report.people_cleared += 1
        else:
            report.people_changed += 1
        person_pending(row.person_id, row.attributes, previous.payload if previous else {})
    for pid, previous in state.items():
        if pid in seen:
            continue
        report.people_considered += 1
        if not previous.payload:
            report.people_unchanged += 1
            continue
        report.people_cleared += 1
        person_pending(pid, {}, previous.payload)

    lookback = max(1, options.payload.event_lookback_days)
    acked = load_acked_event_ids(conn, destination.name, _unix(as_of - timedelta(days=lookback - 1)))
    event_keys: set[str] = set()
    for event in desired_events(conn, as_of, options.payload):
        if event.event_id in event_keys:
            continue  # the same fact twice in the input (e.g. a trigger row duplicated)
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
            local_failures.append((pending, "invalid_input", "attributes", event.error))
        else:
            events.append(pending)
    for (kind, key), failure in failures.items():
        # Failed events older than the window are retried from their stored item.
        if kind == "event" and key not in event_keys and not failure.given_up and failure.item:
            item = failure.item
            events.append(_Pending(_outgoing("event", key, failure.person_id or "", item),
                                   failure.attempts, True, event_name=str(item.get("name", "")),
                                   event_ts=int(item.get("timestamp") or 0)))

    sendable: list[_Pending] = []
    for pending in people + events:
        violation = check_item(pending.item.payload)
        if violation:
            local_failures.append((pending, violation.reason, violation.field, violation.message))
        else:
            sendable.append(pending)
    report.events_pending = sum(1 for p in sendable if p.item.kind == "event")
    report.items_failed_locally = len(local_failures)

    _evaluate_breaker(report, state, options)
    if dry_run:
        persons = [p.item.payload for p in sendable if p.item.kind == "person"]
        evts = [p.item.payload for p in sendable if p.item.kind == "event"]
        report.samples = persons[: options.sample_size] + evts[: options.sample_size]
        report.failed_rows = _failed_frame(
            [_failure_row(p, r, f, m, options.max_attempts, local=True)
             for p, r, f, m in local_failures])
        return finish("dry_run", f"would send {len(sendable)} items")
    if report.breaker["tripped"] and not override_breaker:
        return finish("breaker_tripped", (
            f"circuit breaker: {report.breaker['would_change']} of {report.breaker['known']} known "
            f"people would change (share {report.breaker['share']:.2f} > max "
            f"{options.max_change_share}); nothing sent. Check upstream tables, then re-run with "
            "override_breaker=True to send anyway"))

    failed_rows: list[dict[str, Any]] = []
    now_naive = started.replace(tzinfo=None)
    pending_person_keys = {p.item.key for p in people}
    stale = [("person", key) for (kind, key), f in failures.items()
             if kind == "person" and key not in pending_person_keys and not f.given_up
             and key in seen | set(state)]
    local_rows = [_failure_row(p, r, f, m, options.max_attempts, local=True)
                  for p, r, f, m in local_failures]
    if local_rows or stale:
        commit_batch(conn, destination.name, [], [], stale, [_db_failure(r) for r in local_rows],
                     now_naive)
        failed_rows.extend(local_rows)
    for row in local_rows:
        _count_failure(report, row)

    stats_before = _stats_snapshot(destination)
    send_clock = time.perf_counter()
    try:
        if sendable:
            destination.open_run(run_id, as_of)
            try:
                by_key = {(p.item.kind, p.item.key): p for p in sendable}
                known_failures = set(failures) | {(p.item.kind, p.item.key)
                                                  for p, *_ in local_failures}
                items = [p.item for p in sendable]
                for batch in pack_batches(items, destination.max_items_per_batch,
                                          destination.max_batch_bytes):
                    results = destination.send(batch)
                    _apply_results(conn, destination.name, report, batch, results, by_key,
                                   options, failed_rows, known_failures)
            finally:
                report.destination_facts = destination.close_run()
    except DestinationAuthError as exc:
        _fill_transport(report, destination, stats_before, send_clock)
        report.failed_rows = _failed_frame(failed_rows)
        finish("auth_failed", str(exc))
        raise
    except Exception as exc:
        _fill_transport(report, destination, stats_before, send_clock)
        report.failed_rows = _failed_frame(failed_rows)
        finish("destination_unavailable", redact(f"{type(exc).__name__}: {exc}"))
        raise
    _fill_transport(report, destination, stats_before, send_clock)
    report.failed_rows = _failed_frame(failed_rows)
    status = "partial" if failed_rows else "ok"
    return finish(status, f"sent {report.people_sent} people and {report.events_sent} events")


def _attempts(failures: dict, kind: str, key: str) -> int:
    failure = failures.get((kind, key))
    return failure.attempts if failure and not failure.given_up else 0


def _event_pending(event: EventSpec, attempts: int, retried: bool) -> _Pending:
    payload = event_item(event)
    return _Pending(_outgoing("event", event.event_id, event.person_id, payload), attempts,
                    retried, event_name=event.name, event_ts=event.timestamp)


def _evaluate_breaker(report: SyncReport, state: dict, options: SyncOptions) -> None:
    known = sum(1 for acked in state.values() if acked.payload)
    if known == 0:
        would_change = report.people_new
        share = 1.0 if would_change else 0.0
        applies = options.breaker_on_first_sync
    else:
        would_change = report.people_changed + report.people_cleared
        share = would_change / known
        applies = known >= options.breaker_min_known
    report.breaker = {
        "known": known, "would_change": would_change, "share": round(share, 4),
        "max_change_share": options.max_change_share, "first_sync": known == 0,
        "tripped": bool(applies and share > options.max_change_share),
    }


def _failure_row(p: _Pending, reason: str, field_name: str, message: str, max_attempts: int,
                 local: bool) -> dict[str, Any]:
    attempts = p.attempts_before + 1
    return {
        "item_kind": p.item.kind, "item_key": p.item.key, "person_id": p.item.person_id,
        "reason": reason, "field": field_name, "message": message, "attempts": attempts,
        "given_up": attempts >= max_attempts, "local": local,
        "_item": p.item.payload, "_hash": p.payload_hash, "_retried": p.retried,
    }


def _db_failure(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "item_kind": row["item_kind"], "item_key": row["item_key"], "person_id": row["person_id"],
        "item": json.dumps(row["_item"], ensure_ascii=False), "payload_hash": row["_hash"],
        "attempts": row["attempts"], "last_reason": row["reason"], "last_field": row["field"],
        "last_message": row["message"], "given_up": row["given_up"],
    }


def _count_failure(report: SyncReport, row: dict[str, Any]) -> None:
    report.failures_by_reason[row["reason"]] = report.failures_by_reason.get(row["reason"], 0) + 1
    if row["given_up"]:
        report.items_given_up += 1
    if row["_retried"]:
        report.items_retried += 1


def _apply_results(
    conn: duckdb.DuckDBPyConnection, destination_name: str, report: SyncReport,
    batch: list[OutgoingItem], results: list[ItemResult], by_key: dict, options: SyncOptions,
    failed_rows: list[dict[str, Any]], known_failures: set[tuple[str, str]],
) -> None:
    if len(results) != len(batch) or any(r.key != i.key for r, i in zip(results, batch, strict=True)):
        raise RuntimeError(f"destination {destination_name} returned results that do not match "
                           "the batch (one result per item, in batch order)")
    acked_people, acked_events, succeeded, failures = [], [], [], []
    for item, result in zip(batch, results, strict=True):
        pending = by_key[(item.kind, item.key)]
        if item.kind == "person":
            report.people_sent += 1
        else:
            report.events_sent += 1
        if result.ok:
            if pending.retried:
                report.items_retried += 1
            if (item.kind, item.key) in known_failures:
                succeeded.append((item.kind, item.key))  # drops its (maybe given-up) row
            if item.kind == "person":
                report.people_succeeded += 1
                acked_people.append((item.key, pending.payload_hash, pending.state_payload))
            else:
                report.events_succeeded += 1
                acked_events.append((item.key, item.person_id, pending.event_name,
                                     pending.event_ts))
        else:
            if item.kind == "person":
                report.people_failed += 1
            else:
                report.events_failed += 1
            row = _failure_row(pending, result.reason, result.field, result.message,
                               options.max_attempts, local=False)
            failures.append(_db_failure(row))
            failed_rows.append(row)
            _count_failure(report, row)
    commit_batch(conn, destination_name, acked_people, acked_events, succeeded, failures,
                 datetime.now(UTC).replace(tzinfo=None))


def _stats_snapshot(destination: Destination) -> tuple[int, int, int, int]:
    s = destination.stats
    return s.requests, s.request_retries, s.bytes_sent, s.batch_splits


def _fill_transport(report: SyncReport, destination: Destination,
                    before: tuple[int, int, int, int], send_clock: float) -> None:
    after = _stats_snapshot(destination)
    report.requests, report.request_retries, report.bytes_sent, report.batch_splits = (
        a - b for a, b in zip(after, before, strict=True))
    report.send_seconds = round(time.perf_counter() - send_clock, 3)


def _failed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{c: r[c] for c in FAILED_ROW_COLUMNS} for r in rows],
                        columns=FAILED_ROW_COLUMNS)
