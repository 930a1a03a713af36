"""What the consumer writes out after a batch has committed: the drained landing files and
the emitted events, once per destination. Both are idempotent, so a crash between the commit
and here only means they are done again on restart with identical content and ids.

`OutputWorker` does this on its own thread and SQLite connection while `Consumer.run` is
going: the consumer commits a batch and moves on, so a slow or failing destination (or a
landing-file fsync) never delays segmentation; the ledgers (`pending_file`, `delivered`) are
the hand-over, so the guarantees are the same as doing it inline.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestration.activation.destinations.base import Destination, OutgoingItem
from orchestration.activation.limits import encode_item
from orchestration.activation.payload import EventSpec, event_item
from orchestration.realtime import state

log = logging.getLogger(__name__)
MEMBERSHIP = ("segment_entered", "segment_exited")


def flush_landing(db: sqlite3.Connection, landing_dir: Path, batch: str) -> None:
    """Write one committed batch's `events/dt=<day>/rt-<batch>.jsonl` files (atomic,
    fsynced) from `pending_file`, then forget them."""
    for dt, lines in db.execute("select dt, lines from pending_file where batch = ?", (batch,)):
        folder = landing_dir / "events" / f"dt={dt}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".rt-{batch}.jsonl.tmp"
        with tmp.open("w") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / f"rt-{batch}.jsonl")
    db.execute("delete from pending_file where batch = ?", (batch,))


def send_events(db: sqlite3.Connection, destination: Destination) -> None:
    """Events `destination` has not acknowledged yet, in creation order, in its batch size;
    each acknowledgement is recorded per destination, so a destination that failed (or a
    crash) gets only what it is missing and the others nothing again."""
    rows = db.execute(
        "select event_id, person_id, name, ts, data from emitted e where sent = 0 and not "
        "exists (select 1 from delivered d where d.event_id = e.event_id and "
        "d.destination = ?) order by created_at, event_id",
        (destination.name,),
    ).fetchall()
    size = destination.max_items_per_batch
    as_people = bool(getattr(destination, "membership_as_people", False))
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        items = _membership_items(chunk) if as_people else _event_items(chunk)
        try:
            results = destination.send(items)
        except Exception as exc:  # noqa: BLE001 - one destination down must not stop others
            log.warning("realtime send to %s failed: %s", destination.name, exc)
            return  # retried after the next batch or when the stream is idle
        ok = [(r.key, destination.name) for r in results if r.ok]
        db.execute("begin immediate")  # one commit (fsync) per batch, not one per row
        try:
            db.executemany("insert or ignore into delivered values (?, ?)", ok)
            db.execute("commit")
        except BaseException:
            db.execute("rollback")
            raise


def _event_items(rows: list[tuple]) -> list[OutgoingItem]:
    items = []
    for event_id, person, name, ts, data in rows:
        payload: dict[str, Any] = event_item(
            EventSpec(person, name, ts, event_id, json.loads(data))
        )
        items.append(OutgoingItem("event", event_id, person, payload, encode_item(payload)))
    return items


def _membership_items(rows: list[tuple]) -> list[OutgoingItem]:
    """For a destination that mirrors segment membership from person attributes only
    (LaunchDarkly: `membership_as_people`): each segment_entered / segment_exited becomes a
    person item `segment_<name>: true` / `""`, keyed by the event id (the ledger's key), as
    the daily sync sends membership. Only the latest change per person and segment in a
    batch carries the attribute (a destination may apply a batch's adds and removes in any
    order); other events carry nothing and are acknowledged without a request."""
    latest: dict[tuple[str, str], int] = {}
    changes = []
    for k, (_event_id, person, name, _ts, data) in enumerate(rows):
        segment = json.loads(data).get("segment") if name in MEMBERSHIP else None
        changes.append(segment)
        if segment:
            latest[(person, segment)] = k
    items = []
    for k, (event_id, person, name, _ts, _data) in enumerate(rows):
        segment = changes[k]
        attributes: dict[str, Any] = {}
        if segment and latest[(person, segment)] == k:
            attributes[f"segment_{segment}"] = True if name == "segment_entered" else ""
        payload = {"type": "person", "identifiers": {"id": person}, "attributes": attributes}
        items.append(OutgoingItem("person", event_id, person, payload, encode_item(payload)))
    return items


def mark_sent(db: sqlite3.Connection, names: list[str]) -> bool:
    """`sent` = 1 for events every destination in `names` acknowledged; True while some
    event is still unsent."""
    marks = ",".join("?" * len(names))
    db.execute(
        "update emitted set sent = 1 where sent = 0 and (select count(distinct destination) "
        f"from delivered d where d.event_id = emitted.event_id and d.destination in ({marks})) "
        "= ?",
        [*names, len(names)],
    )
    return db.execute("select exists (select 1 from emitted where sent = 0)").fetchone()[0] == 1


def finish(db: sqlite3.Connection, landing_dir: Path, destinations: Sequence[Destination]) -> bool:
    """Write every committed batch's landing files and send unsent events to each
    destination (idempotent); True while some event is still unsent."""
    for (batch,) in db.execute("select distinct batch from pending_file order by batch").fetchall():
        flush_landing(db, landing_dir, batch)
    for destination in destinations:
        send_events(db, destination)
    return bool(destinations) and mark_sent(db, [d.name for d in destinations])


class OutputWorker:
    """Runs `finish` on a thread whenever the consumer committed something (`wake`), and
    every `retry_s` while an event is unsent (a destination was down)."""

    def __init__(
        self,
        state_path: Path,
        landing_dir: Path,
        destinations: Sequence[Destination],
        retry_s: float = 1.0,
    ):
        self.state_path, self.landing_dir = state_path, landing_dir
        self.destinations, self.retry_s = tuple(destinations), retry_s
        self._due, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="segflow-outputs", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> OutputWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        if self.error is not None:
            raise RuntimeError("realtime output worker stopped") from self.error
        self._due.set()

    def stop(self) -> None:
        self._stop.set()
        self._due.set()
        self._thread.join()

    def _loop(self) -> None:
        db = state.connect(self.state_path)
        db.execute("pragma busy_timeout = 30000")  # the consumer's batch commits are short
        unsent = True
        try:
            while not self._stop.is_set():
                if self._due.wait(self.retry_s if unsent else None):
                    self._due.clear()
                if self._stop.is_set():
                    break
                unsent = finish(db, self.landing_dir, self.destinations)
        except BaseException as exc:  # surfaced to the consumer loop by `wake`
            log.exception("realtime output worker failed")
            self.error = exc
        finally:
            db.close()
