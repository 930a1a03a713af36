"""Outbox destination (the default): one JSON-lines file per run holding exactly the
`/api/v2/batch` request bodies that would have been sent, one request per line.

Useful on a fresh machine without credentials and as an audit trail; every item is
acknowledged once its line is flushed to disk, so the next run's outbox holds only changes.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import IO, Any

from ..limits import TARGET_BATCH_BYTES
from .base import DeliveryStats, ItemResult, OutgoingItem


class OutboxDestination:
    name = "outbox"

    def __init__(
        self, outbox_dir: Path | str, max_items_per_batch: int = 100,
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
        self._file.flush()
        os.fsync(self._file.fileno())  # acknowledged only once it is durable
        self.stats.requests += 1
        self.stats.bytes_sent += len(body) - 1
        return [ItemResult(key=item.key, ok=True) for item in batch]

    def close_run(self) -> dict[str, Any]:
        if self._file is not None:
            self._file.close()
            self._file = None
        return {"outbox_file": str(self.path) if self.path else None}
