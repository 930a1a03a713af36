"""The HTTP part every API destination shares: keep-alive sessions, the client-side rate
limiter, retries with backoff, and the vendor's rate-limit headers.

One logical request = up to `max_retries + 1` attempts; every attempt takes a token from the
shared TokenBucket and is counted in `DeliveryStats`, so retries can neither exceed the
configured rate nor hide from the run report. This is why retries are a small loop here and not
urllib3's `Retry` (or a vendor SDK's built-in retries): those run below `requests` where
neither the limiter nor the report sees them. urllib3's Retry-After parser is reused.

Wait after a retryable answer, in order: `Retry-After` (seconds or HTTP date); the vendor's
reset header (`reset_header`, epoch seconds or milliseconds per `reset_unit`); for a 429
without either, one rate window; otherwise exponential backoff with full jitter.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from urllib3.util.retry import Retry

from ..ratelimit import TokenBucket
from ..redact import redact
from .base import DeliveryStats

# Statuses worth retrying at every vendor (timeouts, rate limits, server errors); a vendor adds
# its own (LaunchDarkly: 409, a concurrent edit).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "segflow-sync"
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for one request: delay_n = uniform(0, min(max_delay, base_delay * 2**n))."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0


@dataclass
class Reply:
    status: int | None
    body: bytes
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RateHeaders:
    """How a vendor announces when its rate window resets (None: it does not)."""

    reset_header: str | None = None
    reset_unit: float = 1.0  # 1.0 = epoch seconds, 1000.0 = epoch milliseconds
    window_s: float = 1.0  # wait after a 429 that carries no usable header


class HttpTransport:
    """Thread-safe: one keep-alive Session per sending thread, shared limiter and stats."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        stats: DeliveryStats,
        rate_limit: float,
        retryable: frozenset[int],
        burst: float | None = None,
        rate_headers: RateHeaders = RateHeaders(),
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        secrets: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.stats = stats
        self.retry = retry or RetryPolicy()
        self.retryable = retryable
        self.rate_headers = rate_headers
        self.timeout = timeout
        self.limiter = TokenBucket(rate_limit, burst)
        self._headers = headers
        self._auth = auth
        self._secrets = secrets
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random(seed)
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            if self._auth:
                session.auth = self._auth
            session.headers.update(self._headers)
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One logical request with rate limiting and retries; never raises network errors
        (the reply then has status None and a redacted error text)."""
        url = self.base_url + path
        reply = Reply(None, b"", "not attempted")
        for attempt in range(self.retry.max_retries + 1):
            self.limiter.acquire()
            with self._lock:
                self.stats.request_retries += 1 if attempt else 0
                self.stats.requests += 1
                self.stats.bytes_sent += len(body or b"")
            wait: float | None = None
            try:
                response = self._session().request(
                    method, url, data=body, headers=headers, timeout=self.timeout
                )
            except _NETWORK_ERRORS as exc:
                with self._lock:
                    self.stats.count_response("network_error")
                reply = Reply(None, b"", redact(f"{type(exc).__name__}: {exc}", self._secrets))
            else:
                with self._lock:
                    self.stats.count_response(str(response.status_code))
                reply = Reply(response.status_code, response.content, "", dict(response.headers))
                if response.status_code not in self.retryable:
                    return reply
                wait = self._announced_wait(response.status_code, response.headers)
            if attempt < self.retry.max_retries:
                self._sleep(self._delay(attempt, wait))
        return reply

    def _announced_wait(self, status: int, headers: Any) -> float | None:
        retry_after = _retry_after_seconds(headers.get("Retry-After"))
        if retry_after is not None and (retry_after > 0 or status != 429):
            return retry_after
        rh = self.rate_headers
        if rh.reset_header and headers.get(rh.reset_header):
            try:
                reset = float(headers[rh.reset_header]) / rh.reset_unit
            except ValueError:
                reset = None
            if reset is not None:
                return max(0.0, reset - self._clock()) + 0.01
        return rh.window_s if status == 429 else None

    def _delay(self, attempt: int, wait: float | None) -> float:
        if wait is not None:
            return min(wait, self.retry.max_retry_after)
        ceiling = min(self.retry.max_delay, self.retry.base_delay * (2**attempt))
        return self._rng.uniform(0.0, ceiling)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(Retry().parse_retry_after(value)))
    except Exception:  # noqa: BLE001 - an unparsable header just means "use backoff"
        return None


@dataclass(frozen=True)
class WindowedAPI:
    """A vendor API that counts requests per 10 s window (Intercom, LaunchDarkly): how its
    access token is found and sent, and how it says when the window resets. The destinations
    differ only in these facts, so the token check, URL check and transport are written once."""

    name: str  # the destination's name, e.g. "intercom"
    env_prefix: str  # <PREFIX>_ACCESS_TOKEN and <PREFIX>_BASE_URL
    token_hint: str  # what kind of token, and where a person creates one
    auth_headers: Callable[[str], dict[str, str]]  # token -> the headers that carry it
    reset_header: str  # epoch time the window resets, in `reset_unit`s (see RateHeaders)
    reset_unit: float
    retryable: frozenset[int]
    config_error: type[ValueError] = ValueError

    def token(self, given: str | None) -> str:
        """`given`, else $<PREFIX>_ACCESS_TOKEN; a missing token is a configuration error."""
        variable = f"{self.env_prefix}_ACCESS_TOKEN"
        token = given if given is not None else os.environ.get(variable, "")
        if not token.strip():
            raise self.config_error(
                f"{variable} is not set: the {self.name} destination needs {self.token_hint}"
            )
        return token

    def base_url(self, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise self.config_error(
                f"{self.env_prefix}_BASE_URL={url!r}: expected an http(s):// URL"
            )
        return url.rstrip("/")

    def connect(
        self,
        destination: Any,
        base_url: str,
        access_token: str | None,
        rate_limit: float,
        max_in_flight: int,
        timeout: tuple[float, float],
        retry: RetryPolicy | None,
        sleep: Callable[[float], None],
    ) -> None:
        """Give `destination` what every windowed destination has: its checked `base_url`,
        `stats`, `max_in_flight` (at least 1), `max_batch_bytes` (one request per batch, whose
        item count binds, never its bytes) and `_transport`."""
        token = self.token(access_token)
        destination.base_url = self.base_url(base_url)
        destination.max_batch_bytes = 10_000_000
        destination.max_in_flight = max(1, max_in_flight)
        destination.stats = DeliveryStats()
        destination._transport = self.transport(
            destination.base_url, token, destination.stats, rate_limit, timeout, retry, sleep
        )

    def transport(
        self,
        base_url: str,
        token: str,
        stats: DeliveryStats,
        rate_limit: float,
        timeout: tuple[float, float],
        retry: RetryPolicy | None,
        sleep: Callable[[float], None],
    ) -> HttpTransport:
        """JSON transport with no banked burst, so rate x 10 s is never exceeded by a burst at
        the start of a window; `token` is masked in errors."""
        return HttpTransport(
            base_url,
            headers={
                **self.auth_headers(token),
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            stats=stats,
            rate_limit=rate_limit,
            burst=1.0,
            retryable=self.retryable,
            rate_headers=RateHeaders(self.reset_header, self.reset_unit, window_s=10.0),
            timeout=timeout,
            retry=retry,
            secrets=(token,),
            sleep=sleep,
        )
