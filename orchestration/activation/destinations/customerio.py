"""Customer.io Track API v2 destination: `POST /api/v2/batch` for identify and event items.

Transport rules (spec: /work/shared/reference/customerio-api.md): Basic auth site_id:api_key;
200 = all accepted; 207 = listed `batch_index` items rejected, the rest accepted; whole-batch
400/413 = split in halves to isolate bad rows; 401/403 = stop the run; 408/429/5xx and network
errors = retry with exponential backoff and full jitter, honouring Retry-After. `send` is
thread-safe: the sync keeps up to `max_in_flight` batches in flight, every attempt still
passing the shared client-side rate limiter.

Retries are a small loop rather than urllib3's `Retry` because every attempt must pass the
client-side rate limiter and be counted in the run report; urllib3 retries below `requests`
where neither is visible. We still reuse urllib3's Retry-After parser (seconds or HTTP date).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests
from urllib3.util.retry import Retry

from ..limits import TARGET_BATCH_BYTES
from ..ratelimit import TokenBucket
from ..redact import basic_auth_token, redact
from .base import DeliveryStats, DestinationAuthError, ItemResult, OutgoingItem

REGION_TRACK_URLS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class CustomerIOConfigError(ValueError):
    """Credentials or URL missing/invalid; the message names the environment variable."""


class CustomerIOUnavailable(RuntimeError):
    """The API could not be reached after all retries (message is already redacted)."""


RATE_WINDOW_SECONDS = 1.0  # a 429 without Retry-After waits for the next rate window


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for one request: delay_n = uniform(0, min(max_delay, base_delay * 2**n))."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0


@dataclass
class _Reply:
    status: int | None
    body: bytes
    error: str = ""


class CustomerIODestination:
    """Sends batches to a Customer.io workspace (or the fake server via `base_url`)."""

    name = "customerio"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        region: str = "us",
        site_id: str | None = None,
        api_key: str | None = None,
        rate_limit: float = 100.0,
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
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.stats = DeliveryStats()
        self.region_info: dict[str, Any] = {}
        self._secrets = (api_key, basic_auth_token(site_id, api_key))
        self._limiter = TokenBucket(rate_limit)
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._auth = (site_id, api_key)
        self._local = threading.local()  # one keep-alive Session per sending thread
        self._stats_lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth
            session.headers.update(
                {"Content-Type": "application/json", "User-Agent": "segflow-sync"}
            )
            self._local.session = session
        return session

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

    def _request(self, method: str, path: str, body: bytes | None) -> _Reply:
        """One logical request with rate limiting and retries; never raises network errors."""
        url = self.base_url + path
        reply = _Reply(None, b"", "not attempted")
        for attempt in range(self.retry.max_retries + 1):
            self._limiter.acquire()
            with self._stats_lock:
                self.stats.request_retries += 1 if attempt else 0
                self.stats.requests += 1
                self.stats.bytes_sent += len(body or b"")
            retry_after: float | None = None
            try:
                response = self._session().request(method, url, data=body, timeout=self.timeout)
            except _NETWORK_ERRORS as exc:
                with self._stats_lock:
                    self.stats.count_response("network_error")
                reply = _Reply(None, b"", redact(f"{type(exc).__name__}: {exc}", self._secrets))
            else:
                with self._stats_lock:
                    self.stats.count_response(str(response.status_code))
                reply = _Reply(response.status_code, response.content)
                if response.status_code not in RETRYABLE_STATUSES:
                    return reply
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                if response.status_code == 429 and not retry_after:
                    # Limits are per window of a second (3000 per 3 s): without a positive
                    # Retry-After, retrying within milliseconds only spends the retries inside
                    # the same window.
                    retry_after = RATE_WINDOW_SECONDS
            if attempt < self.retry.max_retries:
                self._sleep(self._delay(attempt, retry_after))
        return reply

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry.max_retry_after)
        ceiling = min(self.retry.max_delay, self.retry.base_delay * (2**attempt))
        return self._rng.uniform(0.0, ceiling)

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


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(Retry().parse_retry_after(value)))
    except Exception:  # noqa: BLE001 - an unparsable header just means "use backoff"
        return None


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
