"""Activation bookkeeping tables (schema main): what each destination has acknowledged, what
failed and how often, which events were acknowledged, and one log row per run.

State only ever advances for acknowledged items, one transaction per batch, so a run killed
at any point resumes by re-sending exactly what was not acknowledged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

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
)


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL:
        conn.execute(statement)


@dataclass(frozen=True)
class AckedPerson:
    payload_hash: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class FailureRecord:
    kind: str
    key: str
    person_id: str | None
    item: dict[str, Any] | None
    payload_hash: str | None
    attempts: int
    given_up: bool


def load_state(conn: duckdb.DuckDBPyConnection, destination: str) -> dict[str, AckedPerson]:
    if not table_exists(conn, "main", "sync_state"):
        return {}
    rows = conn.execute(
        "select person_id, payload_hash, payload from main.sync_state where destination = ?",
        [destination],
    ).fetchall()
    return {pid: AckedPerson(h, json.loads(p)) for pid, h, p in rows}


def load_failures(
    conn: duckdb.DuckDBPyConnection, destination: str
) -> dict[tuple[str, str], FailureRecord]:
    if not table_exists(conn, "main", "sync_failures"):
        return {}
    rows = conn.execute(
        "select item_kind, item_key, person_id, item, payload_hash, attempts, given_up "
        "from main.sync_failures where destination = ?", [destination],
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
        "and event_timestamp >= ?", [destination, since_ts],
    ).fetchall()
    return {r[0] for r in rows}


def commit_batch(
    conn: duckdb.DuckDBPyConnection,
    destination: str,
    acked_people: list[tuple[str, str, str]],
    acked_events: list[tuple[str, str, str, int]],
    succeeded_keys: list[tuple[str, str]],
    failures: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Record one batch's outcome atomically: acked people (person_id, hash, payload_json),
    acked events (event_id, person_id, name, ts), cleared failures and new/updated failures."""
    conn.execute("begin transaction")
    try:
        if acked_people:
            frame = pd.DataFrame(acked_people, columns=["person_id", "payload_hash", "payload"])
            frame.insert(0, "destination", destination)
            frame["acked_at"] = now
            conn.register("_acked_people", frame)
            conn.execute(
                "insert or replace into main.sync_state "
                "select destination, person_id, payload_hash, payload::JSON, acked_at "
                "from _acked_people"
            )
            conn.unregister("_acked_people")
        if acked_events:
            frame = pd.DataFrame(
                acked_events, columns=["event_id", "person_id", "name", "event_timestamp"]
            )
            frame.insert(0, "destination", destination)
            frame["acked_at"] = now
            conn.register("_acked_events", frame)
            conn.execute(
                "insert or replace into main.sync_acked_events select destination, event_id, "
                "person_id, name, event_timestamp, acked_at from _acked_events"
            )
            conn.unregister("_acked_events")
        if succeeded_keys:
            frame = pd.DataFrame(succeeded_keys, columns=["item_kind", "item_key"])
            conn.register("_succeeded", frame)
            conn.execute(
                "delete from main.sync_failures f using _succeeded s where f.destination = ? "
                "and f.item_kind = s.item_kind and f.item_key = s.item_key", [destination],
            )
            conn.unregister("_succeeded")
        if failures:
            frame = pd.DataFrame(failures)
            frame.insert(0, "destination", destination)
            conn.register("_failures", frame)
            conn.execute(
                "insert or replace into main.sync_failures select destination, item_kind, "
                "item_key, person_id, item::JSON, payload_hash, attempts, last_reason, last_field,"
                " last_message, coalesce((select first_failed_at from main.sync_failures o "
                "where o.destination = _failures.destination and o.item_kind = "
                "_failures.item_kind and o.item_key = _failures.item_key), ?), ?, given_up "
                "from _failures", [now, now],
            )
            conn.unregister("_failures")
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise


def record_run(conn: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    columns = list(row)
    placeholders = ", ".join("?" for _ in columns)
    conn.execute(
        f"insert or replace into main.sync_runs ({', '.join(columns)}) values ({placeholders})",
        [row[c] for c in columns],
    )
