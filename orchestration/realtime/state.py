"""The consumer's intraday state: one SQLite file (WAL; the consumer is its only writer,
`segflow serve` reads it). Everything one stream batch changes is committed in ONE
transaction together with the stream's high-water mark, so a batch redelivered after a crash
is recognised and skipped: state, drained lines and emitted events are applied exactly once.
`pending_file` holds a committed batch's landing-file text per day until it is written.
`emitted.sent` = 1 once every configured destination acknowledged the event; `delivered`
records each destination's acknowledgements (the once-only ledger per destination).
`deferred` holds users whose only reason for a re-evaluation is a new day or snapshot (no
event of theirs changed an input); they are evaluated when the consumer has caught up.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

DDL = """
create table if not exists meta (key text primary key, value text);
create table if not exists user_day (user_id text, day text, counts text not null,
    milestones text not null, primary key (user_id, day));
create table if not exists session (user_id text primary key, started_at real,
    last_at real, events integer);
create table if not exists profile (user_id text primary key, day text, segments text,
    primary_segment text, onboarding_flow text, experiment text, experiment_variant text,
    next_block text, fired text not null default '[]', updated_at real);
create table if not exists pending_file (batch text, dt text, lines text not null,
    primary key (batch, dt));
create table if not exists emitted (event_id text primary key, person_id text, name text,
    ts integer, data text, sent integer default 0, created_at real);
create index if not exists emitted_unsent on emitted (sent);
create table if not exists delivered (event_id text, destination text,
    primary key (event_id, destination));
create table if not exists deferred (user_id text primary key, day text not null);
"""


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        db.execute("pragma query_only = 1")
        return db
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("pragma journal_mode = wal")
    db.execute("pragma synchronous = full")
    db.executescript(DDL)
    _migrate_drain(db)
    return db


def _migrate_drain(db: sqlite3.Connection) -> None:
    """State files written before `pending_file` kept one `drain` row per event: their
    committed but unwritten lines move to `pending_file` (same batch, day and order), so an
    upgrade loses none of them."""
    if not db.execute("select 1 from sqlite_master where name = 'drain'").fetchone():
        return
    db.execute("begin immediate")
    grouped: dict[tuple[str, str], list[str]] = {}
    for batch, dt, line in db.execute(
        "select batch, dt, line from drain where flushed = 0 order by batch, stream_id"
    ):
        grouped.setdefault((batch, dt), []).append(line)
    db.executemany(
        "insert or replace into pending_file values (?, ?, ?)",
        [(batch, dt, "\n".join(lines) + "\n") for (batch, dt), lines in grouped.items()],
    )
    db.execute("drop table drain")
    db.execute("commit")


def get_meta(db: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = db.execute("select value from meta where key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_meta(db: sqlite3.Connection, key: str, value: Any) -> None:
    db.execute(
        "insert into meta values (?, ?) on conflict (key) do update set value = excluded.value",
        (key, str(value)),
    )


def add_counter(db: sqlite3.Connection, key: str, n: int) -> None:
    set_meta(db, key, int(get_meta(db, key, "0") or 0) + n)


def by_user(
    db: sqlite3.Connection,
    select: str,
    users: list[str],
    where: str = "",
    args: tuple = (),
    many: bool = False,
) -> dict:
    """{user_id: rest of the row (a list of them if `many`)} for `select ... where
    user_id in (users) <where>`, in chunks below SQLite's parameter limit."""
    out: dict = {}
    for start in range(0, len(users), 900):
        chunk = users[start : start + 900]
        sql = f"{select} where user_id in ({','.join('?' * len(chunk))}) {where}"
        for row in db.execute(sql, [*chunk, *args]):
            out.setdefault(row[0], []).append(row[1:])
    return {user: rows if many else rows[0] for user, rows in out.items()}
