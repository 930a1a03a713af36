"""Customer.io Track API v2 destination: `POST /api/v2/batch` for identify and event items.

Transport rules (spec: /work/shared/reference/customerio-api.md): Basic auth site_id:api_key;
200 = all accepted; 207 = listed `batch_index` items rejected, the rest accepted; whole-batch
400/413 = split in halves to isolate bad rows; 401/403 = stop the run; 408/429/5xx and network
errors = retry with exponential backoff and full jitter, honouring Retry-After. `send` is
thread-safe: the sync keeps up to `max_in_flight` batches in flight, every attempt still
passing the shared client-side rate limiter.

Sessions, the rate limiter and the retry loop are the shared `HttpTransport` (http.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote

from ...settings import SYNC_RATE_LIMIT
from ..limits import MAX_ATTRIBUTE_VALUE_BYTES, TARGET_BATCH_BYTES
from ..limits import encode_item as _encode
from ..redact import basic_auth_token
from .base import DeliveryStats, DestinationAuthError, ItemResult, OutgoingItem
from .http import RETRYABLE_STATUSES, USER_AGENT, HttpTransport, RateHeaders, Reply, RetryPolicy

REGION_TRACK_URLS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}
# Limits are per window of a second (3000 per 3 s): a 429 without a positive Retry-After
# waits for the next window instead of spending its retries inside the same one.
RATE_WINDOW_SECONDS = 1.0


class CustomerIOConfigError(ValueError):
    """Credentials or URL missing/invalid; the message names the environment variable."""


class CustomerIOUnavailable(RuntimeError):
    """The API could not be reached after all retries (message is already redacted)."""


class CustomerIODestination:
    """Sends batches to a Customer.io workspace (or the fake server via `base_url`)."""

    name = "customerio"
    max_attribute_value_bytes = MAX_ATTRIBUTE_VALUE_BYTES

    def __init__(
        self,
        *,
        base_url: str | None = None,
        region: str = "us",
        site_id: str | None = None,
        api_key: str | None = None,
        rate_limit: float = SYNC_RATE_LIMIT,
        max_in_flight: int = 4,
        max_items_per_batch: int = 100,
        max_batch_bytes: int = TARGET_BATCH_BYTES,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        site_id = site_id if site_id is not None else os.environ.get("CUSTOMERIO_SITE_ID", "")
        api_key = api_key if api_key is not None else os.environ.get("CUSTOMERIO_API_KEY", "")
        if not site_id.strip():
            raise CustomerIOConfigError(
                "CUSTOMERIO_SITE_ID is not set: the customerio destination needs the Track API "
                "site id of the workspace (Settings > API credentials)"
            )
        if not api_key.strip():
            raise CustomerIOConfigError(
                "CUSTOMERIO_API_KEY is not set: the customerio destination needs the Track API key "
                "that belongs to CUSTOMERIO_SITE_ID"
            )
        if region not in REGION_TRACK_URLS:
            raise CustomerIOConfigError(f"CUSTOMERIO_REGION={region!r}: expected one of us, eu")
        self.base_url = (base_url or REGION_TRACK_URLS[region]).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise CustomerIOConfigError(
                f"CUSTOMERIO_TRACK_URL={self.base_url!r}: expected an http(s):// URL"
            )
        self.region = region
        self.max_items_per_batch = max_items_per_batch
        self.max_batch_bytes = max_batch_bytes
        # concurrent batches (the rate limiter still caps requests/s): hides round-trip latency
        self.max_in_flight = max(1, max_in_flight)
        self.stats = DeliveryStats()
        self.region_info: dict[str, Any] = {}
        self._transport = HttpTransport(
            self.base_url,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            stats=self.stats,
            rate_limit=rate_limit,
            retryable=RETRYABLE_STATUSES,
            rate_headers=RateHeaders(window_s=RATE_WINDOW_SECONDS),
            auth=(site_id, api_key),
            timeout=timeout,
            retry=retry,
            secrets=(api_key, basic_auth_token(site_id, api_key)),
            sleep=sleep,
            seed=seed,
        )
        self.retry = self._transport.retry
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:  # never show credentials
        return f"CustomerIODestination(base_url={self.base_url!r}, region={self.region!r})"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CustomerIODestination:
        params: dict[str, Any] = {
            "base_url": settings.customerio_track_url,
            "region": settings.customerio_region,
            "rate_limit": settings.sync_rate_limit,
        }
        params.update(overrides)
        return cls(**params)

    # -- run lifecycle -------------------------------------------------------------------
    def open_run(self, run_id: str, as_of: date) -> None:
        """Cheap credential check (`GET /api/v1/accounts/region`): fail fast on 401/403."""
        reply = self._request("GET", "/api/v1/accounts/region", None)
        if reply.status in (401, 403):
            raise self._auth_error(reply.status, "GET /api/v1/accounts/region")
        if reply.status != 200:
            raise CustomerIOUnavailable(
                f"Customer.io credential check GET {self.base_url}/api/v1/accounts/region "
                f"failed: {reply.error or f'HTTP {reply.status}'}"
            )
        try:
            self.region_info = json.loads(reply.body or b"{}")
        except ValueError:
            self.region_info = {}

    def close_run(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"base_url": self.base_url}
        found = self.region_info.get("region")
        if found and found != self.region:
            facts["warning"] = (
                f"workspace region is {found!r} but CUSTOMERIO_REGION={self.region!r}; "
                f"use {self.region_info.get('url')} to avoid cross-region redirects"
            )
        return facts

    # -- delivery ------------------------------------------------------------------------
    def send(self, batch: list[OutgoingItem]) -> list[ItemResult]:
        return self._deliver(batch)

    def _deliver(self, items: list[OutgoingItem]) -> list[ItemResult]:
        body = b'{"batch":[' + b",".join(item.encoded for item in items) + b"]}"
        reply = self._request("POST", "/api/v2/batch", body)
        status = reply.status
        if status is None:
            return [_fail(i, "network_error", "", reply.error, retryable=True) for i in items]
        if status == 200:
            return [ItemResult(key=i.key, ok=True) for i in items]
        if status == 207:
            return self._partial(items, reply.body)
        if status in (401, 403):
            raise self._auth_error(status, "POST /api/v2/batch")
        if status in (400, 413) and len(items) > 1:
            with self._stats_lock:
                self.stats.batch_splits += 1
            middle = len(items) // 2
            return self._deliver(items[:middle]) + self._deliver(items[middle:])
        if status in (400, 413):
            reason, field, message = _first_error(reply.body, default_reason=f"http_{status}")
            return [_fail(items[0], reason, field, message, retryable=False)]
        reason = "rate_limited" if status == 429 else f"http_{status}"
        retryable = status in RETRYABLE_STATUSES
        message = f"HTTP {status} after {self.retry.max_retries} retries" if retryable else ""
        return [_fail(i, reason, "", message, retryable=retryable) for i in items]

    def _partial(self, items: list[OutgoingItem], body: bytes) -> list[ItemResult]:
        try:
            errors = json.loads(body or b"{}").get("errors") or []
            by_index = {int(e["batch_index"]): e for e in errors}
        except (ValueError, KeyError, TypeError, AttributeError):
            # We cannot tell which rows failed: retry them all (identify merges, events dedupe).
            return [
                _fail(i, "unparseable_207", "", "207 body without batch_index list", True)
                for i in items
            ]
        results = []
        for index, item in enumerate(items):
            error = by_index.get(index)
            if error is None:
                results.append(ItemResult(key=item.key, ok=True))
            else:
                results.append(
                    _fail(
                        item,
                        str(error.get("reason") or "invalid"),
                        str(error.get("field") or ""),
                        str(error.get("message") or ""),
                        retryable=False,
                    )
                )
        return results

    def _request(self, method: str, path: str, body: bytes | None) -> Reply:
        return self._transport.request(method, path, body)

    # -- privacy -------------------------------------------------------------------------
    def forget(self, person_ids: list[str], action: str) -> list[ItemResult]:
        """suppress -> `POST /api/v1/customers/{id}/suppress` (Customer.io deletes the profile
        and refuses the identifier from then on). delete -> v2 `delete` items (batched), then
        the same suppress: a deleted person "can be re-created by later identify calls (unless
        suppressed)" (customerio-api.md §1.4, Track API delete / "Delete people"), and another
        tool feeding the workspace must not bring an erased person back. A delete counts as
        done only when both calls succeeded."""
        if action != "delete":
            return [self._suppress(pid) for pid in person_ids]
        items = []
        for pid in person_ids:
            payload = {"type": "person", "identifiers": {"id": pid}, "action": "delete"}
            items.append(OutgoingItem("person", pid, pid, payload, _encode(payload)))
        deleted: list[ItemResult] = []
        for start in range(0, len(items), self.max_items_per_batch):
            deleted += self._deliver(items[start : start + self.max_items_per_batch])
        return [self._suppress(r.key) if r.ok else r for r in deleted]

    def _suppress(self, pid: str) -> ItemResult:
        reply = self._request("POST", f"/api/v1/customers/{quote(pid, safe='')}/suppress", b"{}")
        if reply.status in (401, 403):
            raise self._auth_error(reply.status, "POST /api/v1/customers/{id}/suppress")
        ok = reply.status == 200
        reason = "" if ok else (f"http_{reply.status}" if reply.status else "network_error")
        return ItemResult(pid, ok, reason, "", reply.error, not ok)

    def _auth_error(self, status: int, what: str) -> DestinationAuthError:
        return DestinationAuthError(
            f"Customer.io rejected the credentials (HTTP {status} on {what} at {self.base_url}): "
            "check CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY (Track API credentials of the "
            "workspace) and CUSTOMERIO_REGION / CUSTOMERIO_TRACK_URL"
        )


def _fail(item: OutgoingItem, reason: str, field: str, message: str, retryable: bool) -> ItemResult:
    return ItemResult(
        key=item.key,
        ok=False,
        reason=reason,
        field=field,
        message=message[:500],
        retryable=retryable,
    )


def _first_error(body: bytes, default_reason: str) -> tuple[str, str, str]:
    """(reason, field, message) from a v2 `{"errors":[...]}` or v1 `{"meta":...}` body."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return default_reason, "", body[:200].decode("utf-8", "replace")
    if isinstance(data, dict) and data.get("errors"):
        error = data["errors"][0]
        if isinstance(error, dict):
            return (
                str(error.get("reason") or default_reason),
                str(error.get("field") or ""),
                str(error.get("message") or ""),
            )
    meta = data.get("meta", {}) if isinstance(data, dict) else {}
    message = meta.get("error") or "; ".join(meta.get("errors") or [])
    return default_reason, "", str(message)
