"""CSV destination: a per-run folder any tool (Customer.io CSV import, a spreadsheet, a BI tool)
can read.

`people_changes.csv` (long: person_id, attribute, value) and `events.csv` are appended and
fsynced per batch, so acknowledged rows are durable; `people.csv` (wide: one row per person,
one column per attribute, "" = cleared) is written from the long file when the run closes.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import date
from pathlib import Path
from typing import IO, Any

from ..limits import TARGET_BATCH_BYTES
from .base import DeliveryStats, ItemResult, OutgoingItem

PEOPLE_LONG_COLUMNS = ["person_id", "attribute", "value"]
EVENT_COLUMNS = ["event_id", "person_id", "name", "timestamp", "data_json"]


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class CsvDestination:
    name = "csv"

    def __init__(
        self,
        export_dir: Path | str,
        max_items_per_batch: int = 500,
        max_batch_bytes: int = TARGET_BATCH_BYTES,
    ) -> None:
        self.export_dir = Path(export_dir)
        self.max_items_per_batch = max_items_per_batch
        self.max_batch_bytes = max_batch_bytes
        self.stats = DeliveryStats()
        self.run_dir: Path | None = None
        self._files: dict[str, IO[str]] = {}

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CsvDestination:
        params: dict[str, Any] = {"export_dir": Path(settings.outbox_dir) / "csv"}
        params.update(overrides)
        return cls(**params)

    def open_run(self, run_id: str, as_of: date) -> None:
        self.run_dir = self.export_dir / f"sync_{as_of.isoformat()}_{run_id}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, columns in (("people_changes", PEOPLE_LONG_COLUMNS), ("events", EVENT_COLUMNS)):
            path = self.run_dir / f"{name}.csv"
            new = not path.exists()
            handle = path.open("a", newline="", encoding="utf-8")
            if new:
                csv.writer(handle).writerow(columns)
            self._files[name] = handle

    def send(self, batch: list[OutgoingItem]) -> list[ItemResult]:
        people = csv.writer(self._files["people_changes"])
        events = csv.writer(self._files["events"])
        for item in batch:
            payload = item.payload
            if item.kind == "person":
                for name, value in payload.get("attributes", {}).items():
                    people.writerow([item.person_id, name, _cell(value)])
            else:
                events.writerow(
                    [
                        payload.get("id"),
                        item.person_id,
                        payload.get("name"),
                        payload.get("timestamp"),
                        json.dumps(payload.get("attributes", {}), sort_keys=True),
                    ]
                )
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
        self.stats.requests += 1
        self.stats.bytes_sent += sum(len(item.encoded) for item in batch)
        return [ItemResult(key=item.key, ok=True) for item in batch]

    def close_run(self) -> dict[str, Any]:
        for handle in self._files.values():
            handle.close()
        self._files = {}
        if self.run_dir is None:
            return {}
        wide = self._write_wide_people()
        return {"csv_dir": str(self.run_dir), "people_csv": str(wide)}

    def _write_wide_people(self) -> Path:
        assert self.run_dir is not None
        people: dict[str, dict[str, str]] = {}
        columns: list[str] = []
        with (self.run_dir / "people_changes.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                people.setdefault(row["person_id"], {})[row["attribute"]] = row["value"]
                if row["attribute"] not in columns:
                    columns.append(row["attribute"])
        path = self.run_dir / "people.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", *columns])
            for person_id, values in people.items():
                writer.writerow([person_id, *(values.get(c, "") for c in columns)])
        return path
