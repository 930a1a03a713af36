"""Activation bookkeeping tables (schema main): what each destination has acknowledged, what
failed and how often, which events were acknowledged, and one log row per run.

Durability without a heavy commit per batch: after each batch the sync appends its outcomes
to `sync_journal` (one small insert into an unindexed table, one commit; no index upkeep).
Folding applies the journal to sync_state / sync_acked_events / sync_failures and empties it
in one transaction, at the end of the run and at the start of the next (after a kill). So
state only advances for acknowledged items, and a killed run's re-run sends exactly what was
not acknowledged.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from ..warehouse import table_exists

DDL = (
    """create table if not exists main.sync_state (
        destination VARCHAR NOT NULL, person_id VARCHAR NOT NULL, payload_hash VARCHAR NOT NULL,
        payload JSON NOT NULL, acked_at TIMESTAMP NOT NULL, primary key (destination, person_id))""",
    """create table if not exists main.sync_failures (
        destination VARCHAR NOT NULL, item_kind VARCHAR NOT NULL, item_key VARCHAR NOT NULL,
        person_id VARCHAR, item JSON, payload_hash VARCHAR, attempts INTEGER NOT NULL,
        last_reason VARCHAR, last_field VARCHAR, last_message VARCHAR,
        first_failed_at TIMESTAMP, last_failed_at TIMESTAMP, given_up BOOLEAN NOT NULL,
        primary key (destination, item_kind, item_key))""",
    """create table if not exists main.sync_acked_events (
        destination VARCHAR NOT NULL, event_id VARCHAR NOT NULL, person_id VARCHAR,
        name VARCHAR, event_timestamp BIGINT, acked_at TIMESTAMP NOT NULL,
        primary key (destination, event_id))""",
    """create table if not exists main.sync_journal (
        destination VARCHAR NOT NULL, run_id VARCHAR NOT NULL, item_kind VARCHAR NOT NULL,
        item_key VARCHAR NOT NULL, person_id VARCHAR, ok BOOLEAN NOT NULL,
        payload_hash VARCHAR, payload VARCHAR, event_name VARCHAR, event_timestamp BIGINT,
        reason VARCHAR, field VARCHAR, message VARCHAR, attempts INTEGER, given_up BOOLEAN,
        item VARCHAR, journaled_at TIMESTAMP NOT NULL)""",
    """create table if not exists main.sync_runs (
        run_id VARCHAR primary key, destination VARCHAR, as_of DATE, latest_date DATE,
        status VARCHAR, dry_run BOOLEAN, started_at TIMESTAMP, finished_at TIMESTAMP,
        people_considered INTEGER, people_new INTEGER, people_changed INTEGER,
        people_cleared INTEGER, people_unchanged INTEGER, people_sent INTEGER,
        people_succeeded INTEGER, people_failed INTEGER, events_considered INTEGER,
        events_sent INTEGER, events_succeeded INTEGER, events_failed INTEGER,
        items_failed_locally INTEGER, items_retried INTEGER, items_given_up INTEGER,
        items_skipped_given_up INTEGER, failures_by_reason JSON, requests INTEGER,
        request_retries INTEGER, batch_splits INTEGER, bytes_sent BIGINT, duration_s DOUBLE,
        requests_per_s DOUBLE, message VARCHAR)""",
    "alter table main.sync_runs add column if not exists people_changed_scores_only INTEGER",
)


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL:
        conn.execute(statement)


@dataclass(frozen=True)
class FailureRecord:
    kind: str
    key: str
    person_id: str | None
    item: dict[str, Any] | None
    payload_hash: str | None
    attempts: int
    given_up: bool


def load_failures(
    conn: duckdb.DuckDBPyConnection, destination: str
) -> dict[tuple[str, str], FailureRecord]:
    if not table_exists(conn, "main", "sync_failures"):
        return {}
    rows = conn.execute(
        "select item_kind, item_key, person_id, item, payload_hash, attempts, given_up "
        "from main.sync_failures where destination = ?",
        [destination],
    ).fetchall()
    return {
        (kind, key): FailureRecord(kind, key, pid, json.loads(item) if item else None, h, n, gu)
        for kind, key, pid, item, h, n, gu in rows
    }


def load_acked_event_ids(
    conn: duckdb.DuckDBPyConnection, destination: str, since_ts: int
) -> set[str]:
    if not table_exists(conn, "main", "sync_acked_events"):
        return set()
    rows = conn.execute(
        "select event_id from main.sync_acked_events where destination = ? "
        "and event_timestamp >= ?",
        [destination, since_ts],
    ).fetchall()
    return {r[0] for r in rows}


JOURNAL_FIELDS = {  # column -> Arrow type of the values the sync journals
    "item_kind": pa.string(),
    "item_key": pa.string(),
    "person_id": pa.string(),
    "ok": pa.bool_(),
    "payload_hash": pa.string(),
    "payload": pa.string(),
    "event_name": pa.string(),
    "event_timestamp": pa.int64(),
    "reason": pa.string(),
    "field": pa.string(),
    "message": pa.string(),
    "attempts": pa.int32(),
    "given_up": pa.bool_(),
    "item": pa.string(),
}


def has_journal(conn: duckdb.DuckDBPyConnection, destination: str) -> bool:
    """True when a run's acknowledgements are journaled but not yet folded (it was killed)."""
    if not table_exists(conn, "main", "sync_journal"):
        return False
    row = conn.execute(
        "select count(*) from main.sync_journal where destination = ?", [destination]
    ).fetchone()
    return bool(row and row[0])


def append_journal(
    conn: duckdb.DuckDBPyConnection,
    destination: str,
    run_id: str,
    rows: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Durably record outcomes in one small transaction: one dict per item with JOURNAL_FIELDS
    (a person's acknowledged payload and hash, an event's name and time; a failure's reason,
    field, message, attempts, given_up and item JSON; absent keys are NULL). The rows go in as
    one Arrow table (converting Python lists as query parameters held the GIL ~3x longer,
    beside the thread that feeds the senders)."""
    if not rows:
        return
    table = pa.table(
        {name: pa.array([row.get(name) for row in rows], type=kind)
         for name, kind in JOURNAL_FIELDS.items()}
    )  # fmt: skip
    conn.register("_journal_rows", table)
    try:
        conn.execute(
            f"insert into main.sync_journal (destination, run_id, {', '.join(JOURNAL_FIELDS)}, "
            f"journaled_at) select $destination, $run_id, {', '.join(JOURNAL_FIELDS)}, $now "
            "from _journal_rows",
            {"destination": destination, "run_id": run_id, "now": now},
        )
    finally:
        conn.unregister("_journal_rows")


def fold_journal(conn: duckdb.DuckDBPyConnection, destination: str) -> None:
    """Apply journaled outcomes to the state tables and empty the journal, in one
    transaction (a kill during the fold leaves everything as before)."""
    conn.execute("begin transaction")
    try:
        fold_statements(conn, destination)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise


def fold_statements(conn: duckdb.DuckDBPyConnection, destination: str) -> None:
    """The fold without its transaction (a dry run folds inside one it then rolls back)."""
    # latest outcome per item (an item is journaled once per run; runs fold in order)
    conn.execute(
        """create or replace temp table _journal as
        select * from main.sync_journal where destination = $d
        qualify row_number() over (partition by item_kind, item_key
                                   order by journaled_at desc, ok desc) = 1""",
        {"d": destination},
    )
    conn.execute(
        """insert or replace into main.sync_state
        select destination, item_key, payload_hash, payload::JSON, journaled_at from _journal
        where ok and item_kind = 'person' and payload is not null"""
    )
    conn.execute(
        """insert or replace into main.sync_acked_events
        select destination, item_key, person_id, event_name, event_timestamp, journaled_at
        from _journal where ok and item_kind = 'event'"""
    )
    conn.execute(
        """delete from main.sync_failures f using _journal j where f.destination = j.destination
        and f.item_kind = j.item_kind and f.item_key = j.item_key and j.ok"""
    )
    conn.execute(
        """insert or replace into main.sync_failures
        select j.destination, j.item_kind, j.item_key, j.person_id, j.item::JSON, j.payload_hash,
            j.attempts, j.reason, j.field, j.message,
            coalesce(o.first_failed_at, j.journaled_at), j.journaled_at, j.given_up
        from _journal j left join main.sync_failures o on o.destination = j.destination
            and o.item_kind = j.item_kind and o.item_key = j.item_key
        where not j.ok"""
    )
    conn.execute("delete from main.sync_journal where destination = ?", [destination])
    conn.execute("drop table _journal")


def record_run(conn: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join("?" for _ in columns)
    conn.execute(
        f"insert or replace into main.sync_runs ({', '.join(columns)}) values ({placeholders})",
        [row[c] for c in columns],
    )


def delete_stale_failures(
    conn: duckdb.DuckDBPyConnection, destination: str, people_table: str
) -> None:
    """Drop live failures of people `people_table` (changes.PEOPLE_TABLE) marks unchanged:
    what failed to send is now what the destination already holds."""
    conn.execute(
        f"""delete from main.sync_failures f using {people_table} p
        where f.destination = $d and f.item_kind = 'person' and f.item_key = p.person_id
        and p.change = 'unchanged' and not f.given_up""",
        {"d": destination},
    )


class JournalWriter:
    """Appends outcomes to sync_journal from a background thread with its own DuckDB cursor,
    so the sending loop never waits for a commit (~10 ms of fsync). Rows that arrive while a
    commit runs go into the next one (group commit): every acknowledgement is durable one
    commit after it arrives; a kill in between only means those rows are sent again.
    `before_commit` (the destination's make_durable, if any) runs before each commit, so what
    was sent for a journaled row is durable first."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        destination: str,
        run_id: str,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self._cursor = conn.cursor()
        self._destination, self._run_id = destination, run_id
        self._before_commit = before_commit
        self._queue: queue.SimpleQueue[list[dict[str, Any]] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sync-journal", daemon=True)
        self._thread.start()

    def append(self, rows: list[dict[str, Any]]) -> None:
        if self._error is not None:
            raise self._error
        if rows:
            self._queue.put(list(rows))

    def close(self) -> None:
        """Wait until everything appended is committed; re-raise a failed commit."""
        self._queue.put(None)
        self._thread.join()
        self._cursor.close()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        done = False
        while not done:
            rows: list[dict[str, Any]] = []
            chunk = self._queue.get()
            while True:
                if chunk is None:
                    done = True
                    break
                rows.extend(chunk)
                if self._queue.empty():
                    break
                chunk = self._queue.get()
            if rows and self._error is None:
                try:
                    if self._before_commit is not None:
                        self._before_commit()
                    append_journal(
                        self._cursor,
                        self._destination,
                        self._run_id,
                        rows,
                        datetime.now(UTC).replace(tzinfo=None),
                    )
                except BaseException as exc:  # noqa: BLE001 - surfaced by append()/close()
                    self._error = exc
