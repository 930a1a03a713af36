"""LaunchDarkly destination: one list-based (standard) segment per segflow segment.

Spec: /work/shared/reference/stack-notes-turn3.md §1 (LaunchDarkly REST API docs,
https://launchdarkly.com/docs/api/segments). A person item's `segment_<name>: true` becomes
an `addIncludedTargets` and `segment_<name>: ""` a `removeIncludedTargets` instruction for the
context kind (default `user`) in `PATCH /api/v2/segments/{project}/{env}/{key}` with
`Content-Type: application/json; domain-model=launchdarkly.semanticpatch`; other attributes
and events have no LaunchDarkly counterpart and are acknowledged without a request.

One PATCH per segment per batch; a batch holds at most 1,500 people, so no request exceeds the
documented 1,500 target operations. A semantic patch is all-or-nothing, so the items of a failed
PATCH fail together (and are retried next run; adds/removes are idempotent). Missing segments
are created on first use (`POST`, 409 = already there). A segment with more targets than the
list limit (15,000, LaunchDarkly's guidance for standard segments) is refused before anything is
sent: big segments need an Enterprise plan and a persistent store in every SDK, so switching to
them is a deliberate choice, not a silent fallback.

Why `requests` (the shared HttpTransport) and not the official `launchdarkly-api` client: its
typed `patch_segment` takes a `PatchWithComment` (JSON-Patch only), which cannot carry the
semantic-patch `environmentKey` and `instructions`; and its urllib3 retries would bypass our
rate limiter and run report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote

from ...settings import Settings
from .base import (
    DestinationAuthError,
    DestinationRefused,
    ItemResult,
    OutgoingItem,
)
from .http import RETRYABLE_STATUSES as HTTP_RETRYABLE
from .http import Reply, RetryPolicy, WindowedAPI

API_VERSION = "20240415"
SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"
MAX_TARGET_OPERATIONS = 1500  # per semantic-patch request
LIST_SEGMENT_LIMIT = 15_000  # targets in a standard (list-based) segment
RETRYABLE_STATUSES = HTTP_RETRYABLE | {409}  # 409: a concurrent edit
SEGMENT_PREFIX = "segment_"


class LaunchDarklyConfigError(ValueError):
    """Token or URL missing/invalid; the message names the environment variable."""


API = WindowedAPI(
    name="launchdarkly",
    env_prefix="LAUNCHDARKLY",
    token_hint="an API access token with writer rights (Account settings > Authorization)",
    auth_headers=lambda token: {
        "Authorization": token,  # the raw token: LaunchDarkly takes no "Bearer"
        "LD-API-Version": API_VERSION,
    },
    reset_header="X-Ratelimit-Reset",
    reset_unit=1000.0,  # epoch milliseconds
    retryable=RETRYABLE_STATUSES,
    config_error=LaunchDarklyConfigError,
)


class LaunchDarklyDestination:
    name = "launchdarkly"
    max_attribute_value_bytes = None  # only segment membership is sent
    # events are ignored here: the real-time consumer sends its membership events as person
    # items (`segment_<name>`) instead (orchestration/realtime/outputs.py)
    membership_as_people = True

    def __init__(
        self,
        *,
        base_url: str = "https://app.launchdarkly.com",
        access_token: str | None = None,
        project: str = "default",
        environment: str = "production",
        context_kind: str = "user",
        segments: tuple[str, ...] | None = None,
        key_prefix: str = "segflow-",
        rate_limit: float = Settings.launchdarkly_rate_limit,
        max_in_flight: int = 1,
        max_items_per_batch: int = MAX_TARGET_OPERATIONS,
        list_limit: int = LIST_SEGMENT_LIMIT,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        API.connect(self, base_url, access_token, rate_limit, max_in_flight, timeout, retry, sleep)
        self.project, self.environment, self.context_kind = project, environment, context_kind
        # None: every segment (tests, ad-hoc use); from_settings passes segments.yml's opt-ins
        self.segments = None if segments is None else tuple(segments)
        self.segments_source = "segments"
        self.key_prefix = key_prefix
        self.max_items_per_batch = min(max_items_per_batch, MAX_TARGET_OPERATIONS)
        self.list_limit = list_limit
        self.created: list[str] = []
        self.sizes: dict[str, int] = {}
        self._known: set[str] = set()

    def __repr__(self) -> str:  # never show the token
        return f"LaunchDarklyDestination(base_url={self.base_url!r}, project={self.project!r})"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> LaunchDarklyDestination:
        """The mirrored segments are those marked `launchdarkly: true` in segments.yml."""
        params: dict[str, Any] = {
            "base_url": settings.launchdarkly_base_url,
            "project": settings.launchdarkly_project,
            "environment": settings.launchdarkly_environment,
            "context_kind": settings.launchdarkly_context_kind,
            "rate_limit": settings.launchdarkly_rate_limit,
        }
        params.update(overrides)
        if "segments" not in params:
            from orchestration.segments.config import load_configured

            config = load_configured(settings)
            params["segments"] = config.launchdarkly_segments
            destination = cls(**params)
            destination.segments_source = str(settings.segments_file)
            return destination
        return cls(**params)

    def segment_key(self, segment: str) -> str:
        return f"{self.key_prefix}{segment}"

    def wanted(self, segment: str) -> bool:
        return self.segments is None or segment in self.segments

    # -- run lifecycle -------------------------------------------------------------------
    def prepare(self, conn: Any, as_of: date) -> None:
        """Refuse when no segment opts in, or a segment's membership on `as_of` exceeds the
        list limit."""
        if self.segments == ():
            raise DestinationRefused(
                f"{self.segments_source}: no segment has `launchdarkly: true`; mark the "
                "segments to mirror to LaunchDarkly, or drop launchdarkly from SEGFLOW_DESTINATIONS"
            )
        rows = conn.execute(
            "select s.segment, count(distinct us.user_id) from main.user_segments us, "
            "unnest(us.segments) as s(segment) where us.segment_date = ? group by 1",
            [as_of],
        ).fetchall()
        self.sizes = {name: n for name, n in rows if self.wanted(name)}
        over = {name: n for name, n in self.sizes.items() if n > self.list_limit}
        if over:
            listed = ", ".join(f"{k} ({v} targets)" for k, v in sorted(over.items()))
            raise DestinationRefused(
                f"LaunchDarkly list-based segments hold at most {self.list_limit} targets: "
                f"{listed}. Set `launchdarkly: false` on them in {self.segments_source}, or use a big "
                "segment (Enterprise plan, persistent store) imported by CSV"
            )

    def open_run(self, run_id: str, as_of: date) -> None:
        reply = self._request("GET", f"/api/v2/projects/{quote(self.project, safe='')}")
        self._raise_for_auth(reply, "GET /api/v2/projects/{project}")
        if reply.status == 404:
            raise DestinationRefused(
                f"LaunchDarkly project {self.project!r} not found: check LAUNCHDARKLY_PROJECT"
            )

    def close_run(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "segments_created": list(self.created)}

    # -- delivery ------------------------------------------------------------------------
    def send(self, batch: list[OutgoingItem]) -> list[ItemResult]:
        changes: dict[str, dict[str, list[str]]] = {}
        touched: dict[str, list[str]] = {}  # item key -> segments it changes
        for item in batch:
            if item.kind != "person":
                continue
            for name, value in (item.payload.get("attributes") or {}).items():
                segment = name[len(SEGMENT_PREFIX) :] if name.startswith(SEGMENT_PREFIX) else ""
                if not segment or not self.wanted(segment):
                    continue
                op = "remove" if value in ("", None, False) else "add"
                changes.setdefault(segment, {"add": [], "remove": []})[op].append(item.person_id)
                touched.setdefault(item.key, []).append(segment)
        failed = {segment: self._patch(segment, ops) for segment, ops in sorted(changes.items())}
        results = []
        for item in batch:
            errors = [failed[s] for s in touched.get(item.key, []) if failed[s]]
            if errors:
                reason, message, retryable = errors[0]
                results.append(ItemResult(item.key, False, reason, "segments", message, retryable))
            else:
                results.append(ItemResult(item.key, True))
        return results

    def _patch(self, segment: str, ops: dict[str, list[str]]) -> tuple[str, str, bool] | None:
        """Apply one segment's adds/removes; None on success, else (reason, message, retry)."""
        instructions = [
            {"kind": kind, "contextKind": self.context_kind, "values": sorted(ops[op])}
            for op, kind in (("add", "addIncludedTargets"), ("remove", "removeIncludedTargets"))
            if ops[op]
        ]
        body = json.dumps(
            {
                "environmentKey": self.environment,
                "comment": "segflow sync",
                "instructions": instructions,
            }
        ).encode()
        path = self._segment_path(segment)
        reply = self._request("PATCH", path, body, {"Content-Type": SEMANTIC_PATCH})
        if reply.status == 404 and self._create(segment):
            reply = self._request("PATCH", path, body, {"Content-Type": SEMANTIC_PATCH})
        self._raise_for_auth(reply, "PATCH segment")
        if reply.status == 200:
            return None
        retryable = reply.status is None or reply.status in RETRYABLE_STATUSES
        return (
            "network_error" if reply.status is None else f"http_{reply.status}",
            reply.error or _error_message(reply.body),
            retryable,
        )

    def _create(self, segment: str) -> bool:
        env = quote(self.environment, safe="")
        body = {
            "name": f"segflow: {segment}",
            "key": self.segment_key(segment),
            "description": f"Members of the segflow segment {segment!r} (synced by segflow)",
            "tags": ["segflow"],
        }
        reply = self._request(
            "POST",
            f"/api/v2/segments/{quote(self.project, safe='')}/{env}",
            json.dumps(body).encode(),
        )
        self._raise_for_auth(reply, "POST segment")
        if reply.status == 201:
            self.created.append(self.segment_key(segment))
        return reply.status in (201, 409)

    def _segment_path(self, segment: str) -> str:
        parts = (self.project, self.environment, self.segment_key(segment))
        return "/api/v2/segments/" + "/".join(quote(p, safe="") for p in parts)

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Reply:
        return self._transport.request(method, path, body, headers)

    def _raise_for_auth(self, reply: Reply, what: str) -> None:
        if reply.status in (401, 403):
            raise DestinationAuthError(
                f"LaunchDarkly rejected the access token (HTTP {reply.status} on {what} at "
                f"{self.base_url}): check LAUNCHDARKLY_ACCESS_TOKEN (an API access token with "
                f"writer rights, not an SDK key): {_error_message(reply.body)}"
            )

    # -- privacy -------------------------------------------------------------------------
    def forget(self, person_ids: list[str], action: str) -> list[ItemResult]:
        """Remove the people from every segflow segment this destination manages."""
        # listed too: a segment opted out since keeps the members it was given earlier
        configured = self.segments if self.segments is not None else self.sizes
        segments = sorted(set(configured) | set(self._listed_segments()))
        errors = [self._patch(s, {"add": [], "remove": list(person_ids)}) for s in segments]
        error = next((e for e in errors if e), None)
        if error is None:
            return [ItemResult(pid, True) for pid in person_ids]
        return [
            ItemResult(pid, False, error[0], "segments", error[1], error[2]) for pid in person_ids
        ]

    def _listed_segments(self) -> list[str]:
        env = quote(self.environment, safe="")
        reply = self._request(
            "GET",
            f"/api/v2/segments/{quote(self.project, safe='')}/{env}?limit=50&filter=tags:segflow",
        )
        try:
            items = json.loads(reply.body or b"{}").get("items") or []
        except ValueError:
            return []
        keys = [str(s.get("key", "")) for s in items]
        return [k[len(self.key_prefix) :] for k in keys if k.startswith(self.key_prefix)]


def _error_message(body: bytes) -> str:
    """`message` of LaunchDarkly's `{"code", "message", "id"}` error body."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        return str(data.get("message") or data.get("code") or "")[:500]
    return ""
