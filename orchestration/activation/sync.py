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

import logging
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from .changes import PEOPLE_TABLE
from .destinations.base import Destination, DestinationAuthError, DestinationRefused
from .options import SyncOptions
from .payload import latest_segment_date
from .plan import build_plan
from .redact import redact
from .report import SyncReport
from .send import failed_frame, failure_row, send_plan
from .state import (
    delete_stale_failures,
    ensure_tables,
    fold_journal,
    fold_statements,
    has_journal,
    record_run,
)

__all__ = ["SyncOptions", "sync"]

log = logging.getLogger(__name__)


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
            plan = build_plan(conn, destination, as_of, options, report, int(started.timestamp()))
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
        report.failed_rows = failed_frame(
            [
                failure_row(p, r, f, m, options.max_attempts, local=True)
                for p, r, f, m in plan.local_failures
            ]
        )
        return finish("dry_run", f"would send {len(sendable)} items")

    ensure_tables(conn)
    fold_journal(conn, destination.name)  # acknowledgements of a run that was killed
    try:
        plan = build_plan(conn, destination, as_of, options, report, int(started.timestamp()))
        if report.breaker["tripped"] and not override_breaker:
            return finish(
                "breaker_tripped",
                (
                    f"circuit breaker: {report.breaker['would_change']} of {report.breaker['known']} "
                    "known people would change segments, flow, band, reasons or arm, or be cleared "
                    f"(share {report.breaker['share']:.2f} > max {options.max_change_share}; "
                    f"{report.people_changed_scores_only} more changed scores only); nothing "
                    "sent. Check upstream tables, then re-run with override_breaker=True to send "
                    "anyway"
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
                send_plan(conn, destination, run_id, report, plan, options, failed_rows)
            finally:
                report.destination_facts = destination.close_run()
        else:  # nothing to send; only journals rows that failed locally
            send_plan(conn, destination, run_id, report, plan, options, failed_rows)
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
    report.failed_rows = failed_frame(failed_rows)
    fold_journal(conn, report.destination)
