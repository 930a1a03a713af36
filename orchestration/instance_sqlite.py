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
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


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
