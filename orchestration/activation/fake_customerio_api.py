"""What the fake Customer.io Track API does with an authenticated request: the documented
size limits, identify merge semantics (removal by "" or null), event de-duplication by `id`,
v2 batches (200 / 207 with `batch_index` errors / 400), suppression, merges and anonymous
events. The server, the fault knobs and the command live in fake_customerio.py."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

MAX_ID_BYTES = 150
MAX_ATTR_NAME_BYTES = 150
MAX_ATTR_VALUE_BYTES = 1000
MAX_ATTRS = 300
MAX_EVENT_NAME_BYTES = 100
MAX_EVENT_DATA_BYTES = 100_000
REGION_URLS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}


@dataclass
class FakeConfig:
    """Behaviour knobs. Faults apply to every authenticated request in this order: dropped
    connection, 429 (rate limit), forced status, random 5xx; stalls happen after processing."""

    site_id: str = "fake-site"
    api_key: str = "fake-key"
    region: str = "us"
    rate_limit: float | None = None  # max requests per `rate_window_s`; None = unlimited
    rate_window_s: float = 1.0
    retry_after: int | None = (
        None  # Retry-After delay-seconds (an integer, per HTTP); None = omitted
    )
    fail_rate: float = 0.0  # share of requests answered with a random 5xx (not processed)
    fail_statuses: tuple[int, ...] = (500, 502, 503, 504)
    latency_s: float = 0.0
    drop_rate: float = 0.0  # share of requests whose socket is closed without a response
    stall_rate: float = 0.0  # share of requests processed, then answered after `stall_s`
    stall_s: float = 0.0
    forced_statuses: list[int] = field(default_factory=list)  # consumed, one per request
    fail_ids: set[str] = field(default_factory=set)  # person ids always rejected (207 / 400)
    oversize_status: int = 413  # undocumented: 413 or 400 for bodies over the limit
    max_request_bytes: int = 500_000
    max_item_bytes: int = 32 * 1024
    kill_after_requests: int | None = None  # call `on_kill` after processing request N
    seed: int | None = 0
    record_items: bool = True  # keep every accepted v2 item (for tests; off for long demos)


class _Store:
    def __init__(self) -> None:
        self.people: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.event_receipts: Counter[str] = Counter()
        self.requests = 0
        self.status_counts: Counter[str] = Counter()
        self.request_log: list[dict[str, Any]] = []
        self.received_items: list[dict[str, Any]] = []  # accepted v2 items, in arrival order
        self.suppressed: set[str] = set()
        self.anonymous_events: dict[str, dict[str, Any]] = {}


def _nbytes(value: Any) -> int:
    """UTF-8 size of a str, else of its json.dumps text (scalars without the encoder: this
    runs for every attribute of every item, and the fake must keep up with the sync)."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if value is None or isinstance(value, bool):
        return len(json.dumps(value))
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return len(repr(value))  # what json.dumps writes for ints and finite floats
    return len(json.dumps(value).encode("utf-8"))


def _check_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return "id attribute must be a string value"
    if value == "":
        return "id attribute cannot be an empty string"
    if _nbytes(value) > MAX_ID_BYTES:
        return f"id cannot be longer than {MAX_ID_BYTES} bytes"
    return None


def _check_attributes(attributes: Any) -> tuple[str, str] | None:
    """(field, message) of the first limit the attributes break."""
    if not isinstance(attributes, dict):
        return "attributes", "attributes must be an object"
    if len(attributes) > MAX_ATTRS:
        return "attributes", f"cannot identify more than {MAX_ATTRS} attributes in one request"
    for name, value in attributes.items():
        if _nbytes(name) > MAX_ATTR_NAME_BYTES:
            return "attributes", f"attribute name cannot be longer than {MAX_ATTR_NAME_BYTES} bytes"
        if value is not None and _nbytes(value) > MAX_ATTR_VALUE_BYTES:
            return (
                f"attributes.{name}",
                f"property value cannot be longer than {MAX_ATTR_VALUE_BYTES} bytes",
            )
    return None


def _check_event(name: Any, data: Any) -> tuple[str, str] | None:
    if not isinstance(name, str) or not name.strip():
        return "name", "event name must not be blank"
    if _nbytes(name) > MAX_EVENT_NAME_BYTES:
        return "name", f"event name cannot be longer than {MAX_EVENT_NAME_BYTES} bytes"
    if data is not None and not isinstance(data, dict):
        return "data", "event data must be a hash"
    if data is not None and _nbytes(data) > MAX_EVENT_DATA_BYTES:
        return "data", f"event data cannot be longer than {MAX_EVENT_DATA_BYTES} bytes"
    return None


class TrackAPI:
    """The Track API's state and semantics; callers hold the fake's lock."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self._store = _Store()
        self._rng = random.Random(self.config.seed)

    def _identify(self, person_id: str, attributes: dict[str, Any]) -> None:
        attributes = dict(attributes)
        update_only = attributes.pop("_update", False) is True
        attributes.pop("_timestamp", None)
        if update_only and person_id not in self._store.people:
            return  # real API: 200 + "Failed Attribute Change" activity, no profile created
        if person_id in self._store.suppressed:
            return  # a suppressed identifier cannot be re-added (200, nothing stored)
        person = self._store.people.setdefault(person_id, {})
        for name, value in attributes.items():
            if value is None or value == "":
                person.pop(name, None)
            else:
                person[name] = value

    def _event(
        self,
        person_id: str,
        name: str,
        event_id: str | None,
        timestamp: Any,
        data: dict[str, Any] | None,
    ) -> None:
        key = event_id or f"noid-{len(self._store.events)}-{self._rng.random()}"
        self._store.event_receipts[key] += 1
        if key in self._store.events:
            return  # duplicate id: silently ignored (200)
        self._store.events[key] = {
            "person_id": person_id,
            "name": name,
            "timestamp": timestamp,
            "data": data or {},
        }

    def _v2_item_error(self, item: Any) -> tuple[str, str, str] | None:
        if not isinstance(item, dict):
            return "invalid", "", "item must be an object"
        if _nbytes(item) > self.config.max_item_bytes:
            return "invalid", "", f"item cannot be larger than {self.config.max_item_bytes} bytes"
        if item.get("type") != "person":
            return "invalid", "type", "only type 'person' is supported by this fake"
        identifiers = item.get("identifiers")
        if (
            not isinstance(identifiers, dict)
            or len(identifiers) != 1
            or not (set(identifiers) <= {"id", "email", "cio_id"})
        ):
            return (
                "invalid",
                "identifiers",
                "identifiers must hold exactly one of id, email, cio_id",
            )
        person_id = next(iter(identifiers.values()))
        problem = _check_id(person_id)
        if problem:
            return "invalid", "identifiers.id", problem
        if person_id in self.config.fail_ids:
            return "invalid", "identifiers.id", "rejected by the fake's fail_ids knob"
        action = item.get("action")
        if action == "identify":
            found = _check_attributes(item.get("attributes", {}))
            return ("invalid", *found) if found else None
        if action == "event":
            found = _check_event(item.get("name"), item.get("attributes"))
            if found:
                return "invalid", "attributes" if found[0] == "data" else found[0], found[1]
            return None
        if action == "delete":
            return None
        return "invalid", "action", f"unsupported action {action!r}"

    def _apply_v2(self, item: dict[str, Any]) -> None:
        if self.config.record_items:
            self._store.received_items.append(item)
        person_id = next(iter(item["identifiers"].values()))
        if item["action"] == "identify":
            self._identify(person_id, item.get("attributes") or {})
        elif item["action"] == "event":
            self._event(
                person_id,
                item["name"],
                item.get("id"),
                item.get("timestamp"),
                item.get("attributes"),
            )
        elif item["action"] == "delete":
            self._store.people.pop(person_id, None)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        """Process an authenticated request under the lock; return (status, json body)."""
        cfg = self.config
        if method == "GET" and path == "/api/v1/accounts/region":
            return 200, {
                "url": REGION_URLS.get(cfg.region, REGION_URLS["us"]),
                "region": cfg.region,
                "environment_id": 1,
            }
        if method == "POST" and path in ("/api/v2/batch", "/api/v2/entity"):
            return self._route_v2(path, body)
        return self._route_v1(method, path, body)

    def _route_v2(self, path: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        """`POST /api/v2/batch` and `/api/v2/entity`."""
        cfg = self.config
        limit = cfg.max_request_bytes if path.endswith("batch") else cfg.max_item_bytes
        if len(body) > limit:
            return cfg.oversize_status, {
                "errors": [
                    {
                        "reason": "too_large",
                        "field": "",
                        "message": f"request body cannot be larger than {limit} bytes",
                    }
                ]
            }
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {
                "errors": [{"reason": "invalid", "field": "", "message": "body is not valid JSON"}]
            }
        if path.endswith("entity"):
            error = self._v2_item_error(data)
            if error:
                return 400, {
                    "errors": [dict(zip(("reason", "field", "message"), error, strict=True))]
                }
            self._apply_v2(data)
            return 200, {}
        batch = data.get("batch") if isinstance(data, dict) else None
        if not isinstance(batch, list) or not batch:
            return 400, {
                "errors": [
                    {
                        "reason": "invalid",
                        "field": "batch",
                        "message": "batch must be a non-empty array",
                    }
                ]
            }
        errors = []
        for index, item in enumerate(batch):
            error = self._v2_item_error(item)
            if error:
                errors.append(
                    {
                        "batch_index": index,
                        "reason": error[0],
                        "field": error[1],
                        "message": error[2],
                    }
                )
            else:
                self._apply_v2(item)
        return (207, {"errors": errors}) if errors else (200, {})

    def _route_v1(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        """The v1 endpoints: customers (identify, delete, suppress, events), merges, anonymous
        events."""
        cfg = self.config
        parts = path.strip("/").split("/")
        if method == "POST" and path in ("/api/v1/merge_customers", "/api/v1/events"):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return 400, {"meta": {"error": "body is not valid JSON"}}
            if path.endswith("events"):
                return self._anonymous_event(data)
            return self._merge(data)
        if len(parts) >= 4 and parts[:3] == ["api", "v1", "customers"]:
            person_id = unquote(parts[3])
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return 400, {"meta": {"error": "body is not valid JSON"}}
            problem = _check_id(person_id) or (
                "rejected by the fake's fail_ids knob" if person_id in cfg.fail_ids else None
            )
            if problem:
                return 400, {"meta": {"error": problem}}
            if method == "PUT" and len(parts) == 4:
                found = _check_attributes(data)
                if found:
                    return 400, {"meta": {"error": found[1]}}
                self._identify(person_id, data)
                return 200, {}
            if method == "DELETE" and len(parts) == 4:
                self._store.people.pop(person_id, None)
                return 200, {}
            if method == "POST" and len(parts) == 5 and parts[4] == "suppress":
                self._store.people.pop(person_id, None)  # suppressing deletes the profile
                self._store.suppressed.add(person_id)
                return 200, {}
            if method == "POST" and len(parts) == 5 and parts[4] == "unsuppress":
                self._store.suppressed.discard(person_id)
                return 200, {}
            if method == "POST" and len(parts) == 5 and parts[4] == "events":
                if not isinstance(data, dict):
                    return 400, {"meta": {"error": "body must be an object"}}
                found = _check_event(data.get("name"), data.get("data"))
                if found:
                    return 400, {"meta": {"error": found[1]}}
                self._event(
                    person_id, data["name"], data.get("id"), data.get("timestamp"), data.get("data")
                )
                return 200, {}
        return 404, {"meta": {"error": "not found"}}

    def _anonymous_event(self, data: Any) -> tuple[int, dict[str, Any]]:
        """`POST /api/v1/events`: an event without a person (`anonymous_id` optional)."""
        if not isinstance(data, dict):
            return 400, {"meta": {"error": "body must be an object"}}
        found = _check_event(data.get("name"), data.get("data"))
        if found:
            return 400, {"meta": {"error": found[1]}}
        key = data.get("id") or f"anon-{len(self._store.anonymous_events)}"
        self._store.anonymous_events.setdefault(
            str(key),
            {
                "anonymous_id": data.get("anonymous_id"),
                "name": str(data["name"]).strip(),
                "timestamp": data.get("timestamp"),
                "data": data.get("data") or {},
            },
        )
        return 200, {}

    def _merge(self, data: Any) -> tuple[int, dict[str, Any]]:
        """`POST /api/v1/merge_customers`: the secondary's attributes fill gaps in the primary
        (primary values win), its events move to the primary, the secondary is deleted."""
        ids = []
        for side in ("primary", "secondary"):
            ident = data.get(side) if isinstance(data, dict) else None
            if (
                not isinstance(ident, dict)
                or len(ident) != 1
                or not (set(ident) <= {"id", "email", "cio_id"})
            ):
                return 400, {
                    "meta": {"error": f"{side} must hold exactly one of id, email, cio_id"}
                }
            ids.append(str(next(iter(ident.values()))))
        primary, secondary = ids
        people = self._store.people
        if secondary not in people:
            return 400, {"meta": {"error": "secondary person not found"}}
        merged = {**people.pop(secondary), **people.get(primary, {})}
        people[primary] = merged
        for event in self._store.events.values():
            if event["person_id"] == secondary:
                event["person_id"] = primary
        return 200, {}
