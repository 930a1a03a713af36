"""`segflow collect`: a Segment HTTP Tracking API endpoint (/v1/track, /v1/identify, /v1/page,
/v1/batch, and analytics.js's short /v1/t, /v1/i, /v1/p, /v1/b) that appends every accepted
message to the stream before it answers 200. Browsers need their origin in
SEGFLOW_CORS_ORIGINS (httpbase.py).

Like Segment: write key as the Basic-auth user (or `writeKey` in the body), 32 KB per message,
500 KB and 2,500 messages per batch, 400 for malformed JSON or an oversize body, 401 for a
missing or wrong write key. Messages that break a loader row rule (events.py) are appended
too, marked with their reason: the consumer does not apply them, and the daily loader
quarantines them from the landing files with the same reason, so nothing is lost in silence.
A failed append answers 503 (the client retries); nothing is acknowledged before it is stored.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contracts.raw import LATE_ARRIVAL_DAYS
from orchestration.realtime.events import QUARANTINE, encode, normalise, reject_reason
from orchestration.realtime.httpbase import (
    BodyTooLarge,
    JsonHandler,
    Server,
    basic_user,
    key_matches,
)
from orchestration.realtime.stream import EventStream

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
ENDPOINTS = {
    "/v1/track": "track",
    "/v1/identify": "identify",
    "/v1/page": "page",
    "/v1/screen": "screen",  # kept as sent; the loader's value map reads it as `page`
    "/v1/group": "group",  # accepted like Segment; quarantined (not an event type here)
    "/v1/alias": "alias",
}
# analytics.js (browser) posts to the first letter of the call (`/v1/t`, text/plain, the
# write key in the body) and batches to `/v1/b`
ENDPOINTS.update({f"/v1/{kind[0]}": kind for kind in ENDPOINTS.values()})
BATCH_PATHS = ("/v1/batch", "/v1/import", "/v1/b")


@dataclass
class CollectorStats:
    requests: int = 0
    accepted: int = 0
    quarantined: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class SegmentError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class CollectorServer(Server):
    def __init__(
        self,
        address: tuple[str, int],
        stream: EventStream,
        write_keys: Sequence[str],
        known_events: frozenset[str],
        late_arrival_days: int = LATE_ARRIVAL_DAYS,
        cors_origins: Sequence[str] = (),
    ):
        if not write_keys:
            raise ValueError("no write keys: set SEGFLOW_WRITE_KEYS (comma-separated)")
        self.stream = stream
        self.write_keys = tuple(write_keys)
        self.known_events = known_events
        self.late_arrival_days = late_arrival_days
        self.stats = CollectorStats()
        self.cors_origins = tuple(cors_origins)
        super().__init__(address, _Handler)


class _Handler(JsonHandler):
    server: CollectorServer

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        stats = self.server.stats
        try:
            path = self.path.split("?", 1)[0].rstrip("/")
            kind = ENDPOINTS.get(path)
            limit = MAX_BATCH_BYTES if kind is None else MAX_MESSAGE_BYTES
            try:
                raw = self.read_body(limit)
                self._body_bytes = len(raw)
                if kind is None and path not in BATCH_PATHS:
                    raise SegmentError(404, f"unknown endpoint {path}")
                body = json.loads(raw)
            except BodyTooLarge as exc:
                raise SegmentError(400, f"{exc}; the limit is {limit // 1024} KB") from None
            except (ValueError, OSError):
                raise SegmentError(400, "invalid JSON") from None
            if not isinstance(body, dict):
                raise SegmentError(400, "invalid JSON: expected an object")
            self._authorise(body)
            messages = self._messages(body, kind)
            received = datetime.now(UTC)
            payloads, reasons = [], Counter()
            for message in messages:
                out = normalise(message, kind, received)
                reason = reject_reason(out, self.server.known_events, self.server.late_arrival_days)
                if reason:
                    out[QUARANTINE] = {"reason_code": reason[0], "reason_detail": reason[1]}
                    reasons[reason[0]] += 1
                payloads.append(encode(out))
            try:
                self.server.stream.append(payloads)
            except Exception as exc:  # broker down: the client must retry
                log.warning("stream append failed: %s", type(exc).__name__)
                raise SegmentError(503, "stream unavailable, retry later") from None
            with stats.lock:
                stats.requests += 1
                stats.accepted += len(payloads)
                stats.quarantined.update(reasons)
            self.reply(200, {"success": True})
        except SegmentError as exc:
            with stats.lock:
                stats.requests += 1
                stats.errors[exc.status] += 1
            self.reply(exc.status, {"success": False, "message": str(exc)})

    def _authorise(self, body: dict) -> None:
        key = basic_user(self.headers.get("Authorization")) or body.get("writeKey")
        if not key_matches(key if isinstance(key, str) else None, self.server.write_keys):
            raise SegmentError(401, "invalid write key")

    def _messages(self, body: dict, kind: str | None) -> list[dict]:
        if kind is not None:
            return [body]
        batch = body.get("batch")
        if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
            raise SegmentError(400, "invalid JSON: `batch` must be a list of objects")
        if len(batch) > MAX_BATCH_MESSAGES:
            raise SegmentError(400, f"batch has {len(batch)} messages; limit {MAX_BATCH_MESSAGES}")
        shared = {k: body[k] for k in ("context", "integrations") if k in body}
        out = []
        for index, message in enumerate(batch):
            if self._body_bytes > MAX_MESSAGE_BYTES:  # else no message as sent is over it
                size = len(encode(message))
                if size > MAX_MESSAGE_BYTES:
                    raise SegmentError(400, f"batch[{index}] is {size} bytes; limit 32 KB")
            out.append({**shared, **message})
        return out
