"""Outbox destination (the default): one JSON-lines file per run holding exactly the
`/api/v2/batch` request bodies that would have been sent, one request per line.

Useful on a fresh machine without credentials and as an audit trail; an item is journaled as
acknowledged only once its line is durable (make_durable(), one fsync per journal commit
instead of one per request: the sync calls it before each commit), so the next run's outbox
holds only changes and a crashed run's re-run sends whatever was not journaled.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from ..limits import TARGET_BATCH_BYTES
from .base import DeliveryStats, ItemResult, OutgoingItem
from .outbox_people import write_people


class OutboxDestination:
    name = "outbox"

    def __init__(
        self,
        outbox_dir: Path | str,
        max_items_per_batch: int = 100,
        max_batch_bytes: int = TARGET_BATCH_BYTES,
    ) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.max_items_per_batch = max_items_per_batch
        self.max_batch_bytes = max_batch_bytes
        self.stats = DeliveryStats()
        self.path: Path | None = None
        self._file: IO[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> OutboxDestination:
        params: dict[str, Any] = {"outbox_dir": settings.outbox_dir}
        params.update(overrides)
        return cls(**params)

    def open_run(self, run_id: str, as_of: date) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.outbox_dir / f"sync_{as_of.isoformat()}_{run_id}.jsonl"
        self._file = self.path.open("ab")

    def send(self, batch: list[OutgoingItem]) -> list[ItemResult]:
        if self._file is None:
            raise RuntimeError("OutboxDestination.send called before open_run")
        body = b'{"batch":[' + b",".join(item.encoded for item in batch) + b"]}\n"
        self._file.write(body)
        self._file.flush()  # in the OS from here; durable at the next make_durable()
        self.stats.requests += 1
        self.stats.bytes_sent += len(body) - 1
        return [ItemResult(key=item.key, ok=True) for item in batch]

    def make_durable(self) -> None:
        """fsync what send() wrote (the journal writer calls it before committing the
        acknowledgements of those lines; a kill or power loss before it only re-sends them)."""
        handle = self._file
        if handle is not None:
            os.fsync(handle.fileno())

    def close_run(self) -> dict[str, Any]:
        if self._file is not None:
            self.make_durable()
            self._file.close()
            self._file = None
        return {"outbox_file": str(self.path) if self.path else None}


# --- human-readable companions of one outbox file -------------------------------------------

EVENT_COLUMNS = ["event_id", "person_id", "name", "timestamp_utc", "attributes"]


def _outbox_items(path: Path) -> tuple[dict[str, dict], list[dict]]:
    people: dict[str, dict] = {}
    events: list[dict] = []
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            for item in json.loads(line)["batch"]:
                if item.get("action") == "identify":
                    people[item["identifiers"]["id"]] = item.get("attributes") or {}
                elif item.get("action") == "event":
                    events.append(item)
    return people, events


def write_readable(conn: Any, outbox_file: Path | str, as_of: date) -> dict[str, str]:
    """Write `<outbox file>.people.csv` (one row per person sent: full current segments, flow,
    scores, bands and, in a kind's action band, its reasons in words (reason_text.py), plus which attributes this sync changed)
    and `<outbox file>.events.csv` (one row per event sent) beside the JSON-lines file."""
    outbox_file = Path(outbox_file)
    people, events = _outbox_items(outbox_file)
    stem = outbox_file.with_suffix("")
    people_path = stem.with_name(stem.name + ".people.csv")
    events_path = stem.with_name(stem.name + ".events.csv")
    write_people(people_path, people, conn, as_of)
    with events_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=EVENT_COLUMNS)
        writer.writeheader()
        for item in events:
            stamp = item.get("timestamp")
            writer.writerow(
                {
                    "event_id": item.get("id", ""),
                    "person_id": item["identifiers"]["id"],
                    "name": item.get("name", ""),
                    "timestamp_utc": datetime.fromtimestamp(stamp, UTC).strftime(
                        "%Y-%m-%d %H:%M:%S"
                    )
                    if isinstance(stamp, int | float)
                    else "",
                    "attributes": json.dumps(item.get("attributes") or {}, sort_keys=True),
                }
            )
    return {
        "people_csv": str(people_path),
        "events_csv": str(events_path),
        "people_rows": len(people),
        "event_rows": len(events),
    }
