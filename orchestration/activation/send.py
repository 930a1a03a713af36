"""Sending a plan: people, then events, a few batches in flight; each batch's outcomes are
counted into the report and journaled (background commits), failures with their reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import duckdb
import pandas as pd

from .batching import pack_batches
from .destinations.base import Destination, ItemResult, OutgoingItem
from .options import SyncOptions
from .plan import Pending, Plan
from .report import FAILED_ROW_COLUMNS, SyncReport
from .state import JournalWriter


def send_plan(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    run_id: str,
    report: SyncReport,
    plan: Plan,
    options: SyncOptions,
    failed_rows: list[dict[str, Any]],
) -> None:
    """Send people, then events (a campaign triggered by an event sees the new attributes),
    with up to `destination.max_in_flight` batches in flight. Outcomes go to a JournalWriter
    (background commits), so neither building nor sending waits for the journal."""
    workers = max(1, int(getattr(destination, "max_in_flight", 1)))
    by_key: dict[tuple[str, str], Pending] = {}
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
            row = failure_row(*plan.local_failures.pop(), options.max_attempts, local=True)
            report.items_failed_locally += 1
            failed_rows.append(row)
            count_failure(report, row)
            unjournaled.append(journal_row(row))
        writer.append(unjournaled)
        unjournaled.clear()

    def items(group: Iterator[Pending] | list[Pending]) -> Iterator[OutgoingItem]:
        for pending in group:
            by_key[(pending.item.kind, pending.item.key)] = pending
            yield pending.item

    writer = JournalWriter(
        conn, destination.name, run_id, before_commit=getattr(destination, "make_durable", None)
    )
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
        row = failure_row(
            pending, result.reason, result.field, result.message, options.max_attempts, local=False
        )
        failed_rows.append(row)
        count_failure(report, row)
        rows.append(journal_row(row))
    return rows


def failure_row(
    p: Pending, reason: str, field_name: str, message: str, max_attempts: int, local: bool
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


def journal_row(row: dict[str, Any]) -> dict[str, Any]:
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


def count_failure(report: SyncReport, row: dict[str, Any]) -> None:
    report.failures_by_reason[row["reason"]] = report.failures_by_reason.get(row["reason"], 0) + 1
    if row["given_up"]:
        report.items_given_up += 1
    if row["_retried"]:
        report.items_retried += 1


def failed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{c: r[c] for c in FAILED_ROW_COLUMNS} for r in rows], columns=FAILED_ROW_COLUMNS
    )
