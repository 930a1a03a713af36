"""What every destination implements, and the item/result shapes the sync exchanges with it.

The seam, and who owns which part:
* the sync (sync.py, changes.py, state.py) owns diffing against what *this* destination
  acknowledged (state is keyed by destination name), packing, the journal/outbox of outcomes,
  failure bookkeeping, dry runs, the circuit breaker and the oversize-value rule;
* the destination owns payload shaping (the generic person/event item -> its API's calls),
  its limits (`max_items_per_batch`, `max_batch_bytes`, `max_attribute_value_bytes`,
  `max_in_flight`), and transport: rate limit, retries and rate-limit headers through the
  shared `HttpTransport` (http.py).
Items are generic: a person item carries the *changed* attributes (`""` = removed, and
`segment_<name>: true` per segment), an event item a name, timestamp, id and data. Adding a
destination = one module with a class that satisfies `Destination` plus one entry in
`destinations.REGISTRY`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable

UNMATCHED_REASON = "unmatched_contact"  # failure reason: no person there for this user id


@dataclass(frozen=True)
class OutgoingItem:
    """One v2 operation: `kind` is "person" (identify) or "event"; `key` is the person id or
    the event id, i.e. the row key used in sync_state / sync_failures."""

    kind: str
    key: str
    person_id: str
    payload: dict[str, Any]
    encoded: bytes


@dataclass(frozen=True)
class ItemResult:
    """Outcome for one item. `retryable` says whether trying again later could help."""

    key: str
    ok: bool
    reason: str = ""
    field: str = ""
    message: str = ""
    retryable: bool = False


@dataclass
class DeliveryStats:
    """Transport counters a destination accumulates over one run."""

    requests: int = 0
    request_retries: int = 0
    bytes_sent: int = 0
    batch_splits: int = 0
    responses_by_status: dict[str, int] = field(default_factory=dict)

    def count_response(self, status: str) -> None:
        self.responses_by_status[status] = self.responses_by_status.get(status, 0) + 1


class DestinationRefused(RuntimeError):
    """The destination cannot take this run as configured (e.g. a segment over its list
    limit); nothing is sent and the message says what to change."""


class DestinationAuthError(RuntimeError):
    """The destination rejected our credentials; the run stops before sending anything more."""


@runtime_checkable
class Destination(Protocol):
    name: str
    max_items_per_batch: int
    max_batch_bytes: int
    stats: DeliveryStats
    # Optional attributes / hooks (looked up with getattr by the sync):
    # `max_in_flight: int` (default 1): batches the sync may send concurrently; a
    #   destination that sets it > 1 must make `send` thread-safe.
    # `max_attribute_value_bytes: int | None` (default None): the per-value limit of the
    #   oversize rule (payload.fit_attributes): longer text is truncated, other values dropped.
    # `prepare(conn, as_of) -> None`: read warehouse facts the destination needs (e.g.
    #   segment sizes, e-mails) before planning; raise DestinationRefused to refuse the run.
    # `forget(person_ids, action) -> list[ItemResult]`: privacy requests (privacy.py).
    # `make_durable() -> None`: for a destination whose `send` acknowledges items before
    #   they are durable (a local file written without an fsync per batch): called by
    #   the journal writer before each commit of acknowledgements, so no item is
    #   journaled as acknowledged before what was sent for it is on disk.

    def open_run(self, run_id: str, as_of: date) -> None:
        """Prepare for a run (e.g. open a file, check credentials). Raise to abort."""

    def send(self, batch: list[OutgoingItem]) -> list[ItemResult]:
        """Deliver one batch; return exactly one result per item, in batch order."""

    def close_run(self) -> dict[str, Any]:
        """Finish the run; return facts for the report (e.g. files written)."""
