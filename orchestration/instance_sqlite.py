"""Dagster's default SQLite storage, made cheap to write for one short-lived launcher process.

Dagster's SQLite storages (run history, event log shards, schedules) are WAL-mode files opened
through SQLAlchemy with a new connection per operation. With SQLite's defaults each event commit
fsyncs the WAL (`synchronous=FULL`), and each close of the last connection to a file checkpoints
the WAL into the database (more fsyncs). A 1,000-user daily run writes about 1,200 commits and
1,350 closes: 10-30 ms each on a busy disk, 20+ s of the run's wall time spent waiting on disk.

`fast_instance_storage(home)` (used by `segflow run` around the run it launches):
- sets `synchronous=NORMAL` on every SQLite connection to a file under `home`. In WAL mode this
  skips the per-commit fsync and stays consistent: a process crash or kill loses nothing; only a
  power loss or OS crash may roll back the last commits (never corrupts the file);
- keeps one idle connection per such file open for the duration, so closing the per-operation
  connections never checkpoints; SQLite checkpoints when the WAL passes 1,000 pages, and closing
  the kept connections at the end checkpoints once.

`kept_event_log_connections(storage)` (also around the run): Dagster's SQLite event log creates
an engine, opens a connection and disposes both for every stored event, and again for the
cross-run index of each asset and check event, and asks `has_table` on yet another connection
before each asset event's tags (~6 ms of CPU and, on a busy disk, ~35 ms of wall per stored
event; a 1,000-user day stores ~330). Within the block each shard keeps one engine with one
connection, used under the storage's own lock as before, and a table found stays found.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

# Dagster's own busy timeout for its SQLite files (dagster._core.storage.sqlite)
BUSY_TIMEOUT_SECONDS = 30
# Shards kept open at once: the run's own and the index, plus a few other runs' shards a step
# reads (the least recently used is closed beyond this)
MAX_KEPT_SHARDS = 8


@contextmanager
def fast_instance_storage(home: Path) -> Iterator[dict[str, sqlite3.Connection]]:
    """Within the block, SQLite files under `home` get the settings above; yields the kept
    connections by file (for tests). Other SQLite files (e.g. MLflow's) are not touched."""
    root = Path(home).resolve()
    kept: dict[str, sqlite3.Connection] = {}
    lock = threading.Lock()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        rows = dbapi_connection.execute("pragma database_list").fetchall()
        path = next((row[2] for row in rows if row[1] == "main"), "")
        if not path or not Path(path).resolve().is_relative_to(root):
            return
        dbapi_connection.execute("pragma synchronous=NORMAL")
        with lock:
            if path not in kept:
                keeper = sqlite3.connect(path, check_same_thread=False)
                keeper.execute("select count(*) from sqlite_master").fetchall()  # opens the WAL
                kept[path] = keeper

    event.listen(Engine, "connect", on_connect)
    try:
        yield kept
    finally:
        event.remove(Engine, "connect", on_connect)
        with lock:
            for keeper in kept.values():
                keeper.close()
            kept.clear()


def _is_sqlite_event_log(storage: Any) -> bool:
    """Dagster's SqliteEventLogStorage, by the members the kept connections rely on."""
    members = ("_connect", "_db_lock", "_initialized_dbs", "conn_string_for_shard", "has_table")
    return all(hasattr(storage, name) for name in members)


@contextmanager
def kept_event_log_connections(storage: Any) -> Iterator[dict[str, Engine]]:
    """Within the block, `storage` (the instance's event log) reuses one engine and connection
    per shard instead of one per operation; yields the kept engines by shard (for tests). Each
    operation is still one transaction under the storage's lock; a shard is created (`_initdb`)
    by Dagster's own path the first time. Any other storage is left as it is."""
    if not _is_sqlite_event_log(storage):
        yield {}
        return
    original = storage._connect
    engines: OrderedDict[str, Engine] = OrderedDict()

    @contextmanager
    def connect(shard: str) -> Iterator[Any]:
        if shard not in storage._initialized_dbs:
            with original(shard):  # creates and stamps the shard, as Dagster does
                pass
        with storage._db_lock:
            engine = engines.pop(shard, None) or create_engine(
                storage.conn_string_for_shard(shard),
                poolclass=StaticPool,
                connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            engines[shard] = engine  # most recently used last
            while len(engines) > MAX_KEPT_SHARDS:
                engines.popitem(last=False)[1].dispose()
            with engine.connect() as conn, conn.begin():
                yield conn

    original_has_table = storage.has_table
    tables: set[str] = set()

    def has_table(name: str) -> bool:
        """Dagster asks before each asset event's tag rows, on a connection of its own; a table
        that exists stays (only `dagster instance migrate` adds tables)."""
        if name not in tables and original_has_table(name):
            tables.add(name)
        return name in tables

    storage._connect, storage.has_table = connect, has_table
    try:
        yield engines
    finally:
        del storage._connect, storage.has_table  # the class's methods again
        with storage._db_lock:
            for engine in engines.values():
                engine.dispose()
            engines.clear()
