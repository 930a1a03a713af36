"""Privacy requests: delete or suppress a person in the warehouse and in every destination.

Inputs: `segflow privacy delete|suppress USER_ID...`, or a landing file
`<landing dir>/privacy_requests.csv` (columns `user_id`, `action` = delete|suppress, optional
`reason`), read at the start of each `destination_sync` (a request already processed is
skipped). Per request, in this order:

1. `privacy_suppressions` gets the person: no later sync sends them anything (sync.py filters
   people and events by this list), whatever the warehouse is rebuilt from.
2. Warehouse: rows with the person in `user_id` or a `*_user_id` column are deleted from every
   derived table (every schema but `raw`; views follow); the sync bookkeeping (`sync_state`, `sync_failures`,
   `sync_journal`, `sync_acked_events`) forgets them. Raw rows per SEGFLOW_PRIVACY_RAW_POLICY:
   `redact` (default) deletes the person's rows in `raw.*` for a delete request (kept for a
   suppress request, which is a "do not contact", not an erasure); `keep` leaves raw rows.
   Landing files are the sender's: re-delivered rows come back into `raw`, but the
   suppression list still stops them at the sync.
3. Destinations (SEGFLOW_DESTINATIONS): each destination's `forget(ids, action)`:
   Customer.io delete (v2 `delete`) or suppress (`POST /api/v1/customers/{id}/suppress`),
   Intercom delete or archive, LaunchDarkly removal from every segflow segment. Outbox/csv
   hold no people and are skipped.
4. `privacy_audit`: one row per (request, target) with what was removed and when.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

ACTIONS = ("delete", "suppress")
LANDING_FILE = "privacy_requests.csv"
SYNC_TABLES = {
    "sync_state": "person_id",
    "sync_failures": "person_id",
    "sync_journal": "person_id",
    "sync_acked_events": "person_id",
}
DDL = (
    """create table if not exists main.privacy_requests (request_id VARCHAR primary key,
        user_id VARCHAR NOT NULL, action VARCHAR NOT NULL, reason VARCHAR, source VARCHAR,
        requested_at TIMESTAMP NOT NULL)""",
    """create table if not exists main.privacy_suppressions (user_id VARCHAR primary key,
        action VARCHAR NOT NULL, request_id VARCHAR, since TIMESTAMP NOT NULL)""",
    """create table if not exists main.privacy_audit (request_id VARCHAR, user_id VARCHAR,
        action VARCHAR, target VARCHAR, outcome VARCHAR, detail VARCHAR, done_at TIMESTAMP)""",
)


class PrivacyInputError(ValueError):
    """A privacy request file or argument is invalid; the message names file/row/column."""


@dataclass(frozen=True)
class PrivacyRequest:
    user_id: str
    action: str
    reason: str = ""
    source: str = "cli"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for statement in DDL:
        conn.execute(statement)


def suppressed_ids(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """People no sync may send (empty when no request was ever made)."""
    exists = conn.execute(
        "select count(*) from information_schema.tables where table_schema = 'main' "
        "and table_name = 'privacy_suppressions'"
    ).fetchone()[0]
    if not exists:
        return set()
    return {r[0] for r in conn.execute("select user_id from main.privacy_suppressions").fetchall()}


def read_landing_file(path: Path) -> list[PrivacyRequest]:
    """Requests in a privacy_requests.csv; a bad row is an error naming file, row and column."""
    requests = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"user_id", "action"} - set(reader.fieldnames or [])
        if missing:
            raise PrivacyInputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            user_id = (row.get("user_id") or "").strip()
            action = (row.get("action") or "").strip().lower()
            if not user_id:
                raise PrivacyInputError(f"{path} row {line}: column user_id is empty")
            if action not in ACTIONS:
                raise PrivacyInputError(
                    f"{path} row {line}: column action={action!r}, expected delete or suppress"
                )
            requests.append(
                PrivacyRequest(user_id, action, (row.get("reason") or "").strip(), path.name)
            )
    return requests


def pending(conn: duckdb.DuckDBPyConnection, requests: list[PrivacyRequest]) -> list:
    """Requests not processed before (same user and action), de-duplicated."""
    ensure_tables(conn)
    # a request whose removal failed somewhere is applied again (removals are idempotent)
    done = set(
        conn.execute(
            "select user_id, action from main.privacy_requests r where not exists (select 1 "
            "from main.privacy_audit a where a.request_id = r.request_id and a.outcome = 'failed')"
        ).fetchall()
    )
    out, seen = [], set()
    for request in requests:
        key = (request.user_id, request.action)
        if key not in done and key not in seen:
            seen.add(key)
            out.append(request)
    return out


def apply_requests(
    conn: duckdb.DuckDBPyConnection,
    requests: list[PrivacyRequest],
    destinations: list[Any],
    raw_policy: str = "redact",
) -> list[dict[str, Any]]:
    """Process requests (see module docstring); returns the audit rows written."""
    ensure_tables(conn)
    audit: list[dict[str, Any]] = []
    for action in ACTIONS:
        batch = [r for r in requests if r.action == action]
        if batch:
            audit += _apply_action(conn, batch, action, destinations, raw_policy)
    if audit:
        conn.executemany(
            "insert into main.privacy_audit values (?, ?, ?, ?, ?, ?, ?)",
            [list(row.values()) for row in audit],
        )
    return audit


def _apply_action(
    conn: duckdb.DuckDBPyConnection,
    batch: list[PrivacyRequest],
    action: str,
    destinations: list[Any],
    raw_policy: str,
) -> list[dict[str, Any]]:
    ids = sorted({r.user_id for r in batch})
    request_ids = {r.user_id: uuid.uuid4().hex for r in batch}
    for r in batch:
        conn.execute(
            "insert into main.privacy_requests values (?, ?, ?, ?, ?, ?)",
            [request_ids[r.user_id], r.user_id, action, r.reason, r.source, _now()],
        )
        conn.execute(
            "insert or replace into main.privacy_suppressions values (?, ?, ?, ?)",
            [r.user_id, action, request_ids[r.user_id], _now()],
        )
    audit: list[dict[str, Any]] = []

    def record(user_id: str, target: str, outcome: str, detail: str) -> None:
        audit.append(
            {
                "request_id": request_ids[user_id],
                "user_id": user_id,
                "action": action,
                "target": target,
                "outcome": outcome,
                "detail": detail,
                "done_at": _now(),
            }
        )

    _forget_in_warehouse(conn, ids, action, raw_policy, record)
    for destination in destinations:
        _forget_in_destination(destination, ids, action, record)
    return audit


def _user_tables(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(schema, table, id column) of every base table holding person rows: `user_id` and any
    `*_user_id` column (int_events_stitched.stitched_user_id carries the person on their
    anonymous, pre-identify events)."""
    rows = conn.execute(
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns c "
        "join information_schema.tables t on t.table_schema = c.table_schema "
        "and t.table_name = c.table_name where t.table_type = 'BASE TABLE' "
        "and (c.column_name = 'user_id' or c.column_name like '%\\_user\\_id' escape '\\' "
        "or (c.table_schema = 'main' "
        "and c.table_name in ('sync_state','sync_failures','sync_journal','sync_acked_events') "
        "and c.column_name = 'person_id')) and c.table_name not like 'privacy_%' "
        "order by 1, 2, 3"
    ).fetchall()
    return [(s, t, c) for s, t, c in rows]


def _forget_in_warehouse(
    conn: duckdb.DuckDBPyConnection,
    ids: list[str],
    action: str,
    raw_policy: str,
    record: Callable[[str, str, str, str], None],
) -> None:
    for schema, table, column in _user_tables(conn):
        is_raw = schema == "raw"
        if is_raw and (raw_policy == "keep" or action == "suppress"):
            continue
        name = f'"{schema}"."{table}"'
        counts = dict(
            conn.execute(
                f"select {column}, count(*) from {name} where {column} in "
                f"(select unnest(?::VARCHAR[])) group by 1",
                [ids],
            ).fetchall()
        )
        if not counts:
            continue
        conn.execute(f"delete from {name} where {column} in (select unnest(?::VARCHAR[]))", [ids])
        for user_id, n in counts.items():
            record(user_id, f"warehouse:{schema}.{table}", "removed", f"{n} rows")


def _forget_in_destination(
    destination: Any, ids: list[str], action: str, record: Callable[[str, str, str, str], None]
) -> None:
    forget = getattr(destination, "forget", None)
    target = f"destination:{destination.name}"
    if forget is None:
        for user_id in ids:
            record(user_id, target, "not_applicable", "destination holds no people")
        return
    for result in forget(ids, action):
        outcome = "removed" if result.ok else "failed"
        record(result.key, target, outcome, result.message or result.reason)


def process_landing(conn: duckdb.DuckDBPyConnection, settings: Any, destinations: list) -> list:
    """Apply new requests from `<landing dir>/privacy_requests.csv` (the sync calls this)."""
    path = Path(settings.source_dir) / LANDING_FILE
    if not path.exists():
        return []
    requests = pending(conn, read_landing_file(path))
    if not requests:
        return []
    return apply_requests(conn, requests, destinations, settings.privacy_raw_policy)


def run_cli(settings: Any, action: str, user_ids: list[str], reason: str) -> int:
    """`segflow privacy delete|suppress USER_ID...`: apply now, print the audit summary."""
    from ..warehouse import connect
    from .destinations import build_destination

    destinations = [build_destination(name, settings) for name in settings.destinations]
    requests = [PrivacyRequest(u.strip(), action, reason, "cli") for u in user_ids if u.strip()]
    with connect(settings.duckdb_path) as conn:
        audit = apply_requests(conn, requests, destinations, settings.privacy_raw_policy)
    failed = [row for row in audit if row["outcome"] == "failed"]
    for row in audit:
        print(f"{row['user_id']}\t{row['target']}\t{row['outcome']}\t{row['detail']}")
    print(
        f"privacy {action}: {len(requests)} people, {len(audit)} audit rows, {len(failed)} failed"
    )
    return 1 if failed else 0
