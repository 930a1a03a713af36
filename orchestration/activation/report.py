"""The result object of one sync run (what Dagster turns into metadata and sync_runs stores)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd

from .destinations.base import UNMATCHED_REASON
from .oversize import OversizeCounts

FAILED_ROW_COLUMNS = [
    "item_kind",
    "item_key",
    "person_id",
    "reason",
    "field",
    "message",
    "attempts",
    "given_up",
    "local",
]


class SyncBlockedError(RuntimeError):
    """The sync refused to send (circuit breaker); re-run with override to force it."""


@dataclass
class SyncReport:
    run_id: str
    destination: str
    as_of: date | None
    latest_date: date | None
    # ok | partial | dry_run | skipped_backfill | breaker_tripped | refused | auth_failed |
    # destination_unavailable
    status: str = "ok"
    dry_run: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    people_considered: int = 0
    people_new: int = 0
    people_changed: int = 0
    people_changed_scores_only: int = 0  # of people_changed: only scores/versions differ
    people_cleared: int = 0
    people_unchanged: int = 0
    people_sent: int = 0
    people_succeeded: int = 0
    people_failed: int = 0
    events_considered: int = 0
    events_already_acked: int = 0
    events_pending: int = 0
    events_sent: int = 0
    events_succeeded: int = 0
    events_failed: int = 0
    items_failed_locally: int = 0
    items_retried: int = 0
    items_given_up: int = 0
    items_skipped_given_up: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    request_retries: int = 0
    batch_splits: int = 0
    bytes_sent: int = 0
    send_seconds: float = 0.0
    duration_s: float = 0.0
    breaker: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    failed_rows: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=FAILED_ROW_COLUMNS)
    )
    destination_facts: dict[str, Any] = field(default_factory=dict)
    oversize: OversizeCounts = field(default_factory=OversizeCounts)
    people_suppressed: int = 0  # privacy: never sent (privacy_suppressions)
    message: str = ""

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def bytes_per_request(self) -> float:
        return self.bytes_sent / self.requests if self.requests else 0.0

    @property
    def people_changed_total(self) -> int:
        return self.people_new + self.people_changed + self.people_cleared

    def raise_if_blocked(self) -> None:
        if self.status == "breaker_tripped":
            raise SyncBlockedError(self.message)

    def to_metadata(self) -> dict[str, Any]:
        """Flat JSON-friendly summary (no samples, no failed rows) for Dagster metadata."""
        skip = {"samples", "failed_rows", "started_at", "finished_at", "oversize"}
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name in skip:
                continue
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, date) else value
        out["attributes_truncated"] = self.oversize.truncated
        out["attributes_dropped"] = self.oversize.dropped
        out["oversize_by_attribute"] = dict(self.oversize.by_attribute)
        out["requests_per_s"] = round(self.requests_per_s, 2)
        out["bytes_per_request"] = round(self.bytes_per_request, 1)
        return out

    def summary(self) -> dict[str, Any]:
        """The few figures a person reads at the end of a run (JSON-friendly): what went out,
        what failed, who had no match at the destination, and why nothing was sent."""
        return {
            "destination": self.destination,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "status": self.status,
            "people_sent": self.people_sent,
            "people_succeeded": self.people_succeeded,
            "people_failed": self.people_failed,
            "people_scores_only": self.people_changed_scores_only,
            "events_sent": self.events_sent,
            "events_succeeded": self.events_succeeded,
            "events_failed": self.events_failed,
            "failed_locally": self.items_failed_locally,
            "unmatched": self.failures_by_reason.get(UNMATCHED_REASON, 0),
            "suppressed": self.people_suppressed,
            "message": self.message,
            "outbox_file": self.destination_facts.get("outbox_file"),
        }

    def sync_runs_row(self) -> dict[str, Any]:
        import json

        return {
            "run_id": self.run_id,
            "destination": self.destination,
            "as_of": self.as_of,
            "latest_date": self.latest_date,
            "status": self.status,
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "people_considered": self.people_considered,
            "people_new": self.people_new,
            "people_changed": self.people_changed,
            "people_changed_scores_only": self.people_changed_scores_only,
            "people_cleared": self.people_cleared,
            "people_unchanged": self.people_unchanged,
            "people_sent": self.people_sent,
            "people_succeeded": self.people_succeeded,
            "people_failed": self.people_failed,
            "events_considered": self.events_considered,
            "events_sent": self.events_sent,
            "events_succeeded": self.events_succeeded,
            "events_failed": self.events_failed,
            "items_failed_locally": self.items_failed_locally,
            "items_retried": self.items_retried,
            "items_given_up": self.items_given_up,
            "items_skipped_given_up": self.items_skipped_given_up,
            "failures_by_reason": json.dumps(self.failures_by_reason, sort_keys=True),
            "requests": self.requests,
            "request_retries": self.request_retries,
            "batch_splits": self.batch_splits,
            "bytes_sent": self.bytes_sent,
            "duration_s": self.duration_s,
            "requests_per_s": self.requests_per_s,
            "message": self.message,
        }
