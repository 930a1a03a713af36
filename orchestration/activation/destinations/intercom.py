"""Intercom destination: custom attributes and one tag per segment on contacts, and data events.

Spec: /work/shared/reference/stack-notes-turn3.md §2 (Intercom REST API 2.x,
https://developers.intercom.com/docs/references/rest-api/). Per person item: find the contact
by `external_id` (`GET /contacts/find_by_external_id/{id}`), else by e-mail
(`POST /contacts/search`, e-mail from `dim_users`, the contact then gets our `external_id`),
else create it (`POST /contacts`) when SEGFLOW_INTERCOM_CREATE_CONTACTS is on, else the person
fails as `unmatched_contact` (counted, retried on later runs). Then `PUT /contacts/{id}` with
the changed custom attributes (`""` -> null = cleared), and `segment_<name>` changes become
tag `segflow-<name>` attach (`POST /contacts/{id}/tags`) or detach (`DELETE .../tags/{tag}`).
Events go to `POST /events` (202) by `user_id`; `created_at` is the event day plus a
deterministic second-of-day from the event id, because Intercom de-duplicates on (contact,
name, created_at) and two segments entered on one day would otherwise collapse into one.
Metadata keeps the first 10 keys (Intercom ignores more); nested values are sent as JSON text.

Why not the official `python-intercom` 5.0.1 client: its built-in retries (httpx, 2 by
default) run below our rate limiter and run report, and it never sends `Intercom-Version`;
the endpoints are few and plain JSON, so the shared HttpTransport serves them directly.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote

from contracts.models import KINDS

from ...settings import Settings
from ..payload import SEGMENT_ATTRIBUTE_PREFIX
from .base import (
    UNMATCHED_REASON,
    DestinationAuthError,
    ItemResult,
    OutgoingItem,
)
from .http import RETRYABLE_STATUSES, Reply, RetryPolicy, WindowedAPI

API_VERSION = "2.14"
MAX_METADATA_KEYS = 10
# String custom-attribute values: 255 characters (Intercom's attribute limit as stated in its
# help centre; not in the OpenAPI spec, so treat as UNVERIFIED; the fake enforces it).
MAX_STRING_ATTRIBUTE_BYTES = 255
TAG_PREFIX = "segflow-"
# Probabilities are floats, money (rounded to whole units by default) an integer.
ATTRIBUTE_TYPES = {
    **{
        spec.score_column: "float" if spec.task == "classification" else "integer"
        for spec in KINDS.values()
    },
    "segflow_synced_at": "integer",
}  # every other segflow attribute is a string


class IntercomConfigError(ValueError):
    """Token or URL missing/invalid; the message names the environment variable."""


API = WindowedAPI(
    name="intercom",
    env_prefix="INTERCOM",
    token_hint="an access token of a private app (Developer Hub > your app > Authentication)",
    auth_headers=lambda token: {
        "Authorization": f"Bearer {token}",
        "Intercom-Version": API_VERSION,
        "Accept": "application/json",
    },
    reset_header="X-RateLimit-Reset",
    reset_unit=1.0,  # epoch seconds
    retryable=RETRYABLE_STATUSES,
    config_error=IntercomConfigError,
)


class _Failed(Exception):
    def __init__(self, reason: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.retryable = reason, message, retryable


class IntercomDestination:
    name = "intercom"
    max_attribute_value_bytes = MAX_STRING_ATTRIBUTE_BYTES

    def __init__(
        self,
        *,
        base_url: str = "https://api.intercom.io",
        access_token: str | None = None,
        create_contacts: bool = False,
        rate_limit: float = Settings.intercom_rate_limit,
        max_in_flight: int = 4,
        max_items_per_batch: int = 50,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        API.connect(self, base_url, access_token, rate_limit, max_in_flight, timeout, retry, sleep)
        self.create_contacts = create_contacts
        self.max_items_per_batch = max_items_per_batch
        self.emails: dict[str, str] = {}
        self.created = 0
        self._contacts: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"IntercomDestination(base_url={self.base_url!r})"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> IntercomDestination:
        params: dict[str, Any] = {
            "base_url": settings.intercom_base_url,
            "create_contacts": settings.intercom_create_contacts,
            "rate_limit": settings.intercom_rate_limit,
        }
        params.update(overrides)
        return cls(**params)

    # -- run lifecycle -------------------------------------------------------------------
    def prepare(self, conn: Any, as_of: date) -> None:
        """E-mails for the fallback match, from dim_users when the warehouse has it."""
        has = conn.execute(
            "select count(*) from information_schema.columns where table_schema = 'main' "
            "and table_name = 'dim_users' and column_name in ('user_id', 'email')"
        ).fetchone()[0]
        if has == 2:
            rows = conn.execute(
                "select user_id, email from main.dim_users where email is not null"
            ).fetchall()
            self.emails = {str(u): str(e) for u, e in rows if str(e).strip()}

    def open_run(self, run_id: str, as_of: date) -> None:
        """Credential check and the custom attributes defined up front (list, create missing)."""
        reply = self._call("GET", "/data_attributes?model=contact")
        existing = {a.get("name") for a in _json(reply.body).get("data") or []}
        for name in sorted(set(self._attribute_names()) - existing):
            body = {
                "name": name,
                "model": "contact",
                "data_type": ATTRIBUTE_TYPES.get(name, "string"),
            }
            self._call("POST", "/data_attributes", body, ok=(200, 201, 400))

    def close_run(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "contacts_created": self.created}

    @staticmethod
    def _attribute_names() -> list[str]:
        from ..payload import (
            REASONS_ATTRIBUTE,
            SCORE_TEXT_COLUMNS,
            SYNCED_AT_ATTRIBUTE,
            TEXT_COLUMNS,
        )

        return [
            *TEXT_COLUMNS,
            REASONS_ATTRIBUTE,
            *SCORE_TEXT_COLUMNS,
            *ATTRIBUTE_TYPES,
            SYNCED_AT_ATTRIBUTE,
            "segments",
        ]

    # -- delivery ------------------------------------------------------------------------
    def send(self, batch: list[OutgoingItem]) -> list[ItemResult]:
        results = []
        for item in batch:
            try:
                if item.kind == "person":
                    self._person(item)
                else:
                    self._event(item)
                results.append(ItemResult(item.key, True))
            except _Failed as failed:
                results.append(
                    ItemResult(item.key, False, failed.reason, "", failed.message, failed.retryable)
                )
        return results

    def _person(self, item: OutgoingItem) -> None:
        attributes = item.payload.get("attributes") or {}
        contact_id = self.contact_id(item.person_id, create=self.create_contacts)
        custom = {
            name: (None if value == "" else value)
            for name, value in attributes.items()
            if not name.startswith(SEGMENT_ATTRIBUTE_PREFIX)
        }
        if custom:
            self._call("PUT", f"/contacts/{contact_id}", {"custom_attributes": custom})
        for name, value in sorted(attributes.items()):
            if not name.startswith(SEGMENT_ATTRIBUTE_PREFIX):
                continue
            tag_id = self._tag_id(TAG_PREFIX + name[len(SEGMENT_ATTRIBUTE_PREFIX) :])
            if value in ("", None, False):
                self._call("DELETE", f"/contacts/{contact_id}/tags/{tag_id}", ok=(200, 404))
            else:
                self._call("POST", f"/contacts/{contact_id}/tags", {"id": tag_id})

    def _event(self, item: OutgoingItem) -> None:
        payload = item.payload
        digest = hashlib.md5(str(payload.get("id", item.key)).encode()).hexdigest()
        data = payload.get("attributes") or {}
        metadata = {
            k: v if isinstance(v, str | int | float | bool) else json.dumps(v, sort_keys=True)
            for k, v in sorted(data.items())[:MAX_METADATA_KEYS]
        }
        body = {
            "event_name": payload.get("name"),
            "created_at": int(payload.get("timestamp") or 0) + int(digest[:8], 16) % 86_400,
            "user_id": item.person_id,
            "metadata": metadata,
        }
        reply = self._call("POST", "/events", body, ok=(200, 202, 404))
        if reply.status == 404:
            raise _Failed(UNMATCHED_REASON, "no Intercom contact with this user_id", False)

    # -- identity ------------------------------------------------------------------------
    def contact_id(self, person_id: str, create: bool) -> str:
        """Intercom id of the person's contact: external_id, else e-mail, else created."""
        with self._lock:
            if person_id in self._contacts:
                return self._contacts[person_id]
        path = f"/contacts/find_by_external_id/{quote(person_id, safe='')}"
        reply = self._call("GET", path, ok=(200, 404))
        found = _json(reply.body).get("id") if reply.status == 200 else None
        email = self.emails.get(person_id)
        if not found and email:
            query = {"query": {"field": "email", "operator": "=", "value": email}}
            data = _json(self._call("POST", "/contacts/search", query).body).get("data") or []
            if data:
                found = data[0]["id"]
                self._call("PUT", f"/contacts/{found}", {"external_id": person_id})
        if not found and create:
            body = {"role": "user", "external_id": person_id, **({"email": email} if email else {})}
            found = _json(self._call("POST", "/contacts", body).body).get("id")
            self.created += 1
        if not found:
            raise _Failed(
                UNMATCHED_REASON,
                "no Intercom contact with this external_id or e-mail "
                "(SEGFLOW_INTERCOM_CREATE_CONTACTS=1 creates them)",
                False,
            )
        with self._lock:
            self._contacts[person_id] = found
        return found

    def _tag_id(self, name: str) -> str:
        with self._lock:
            if name in self._tags:
                return self._tags[name]
        tag_id = str(_json(self._call("POST", "/tags", {"name": name}).body).get("id"))
        with self._lock:
            self._tags[name] = tag_id
        return tag_id

    def _call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)
    ) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        reply = self._transport.request(method, path, data)
        if reply.status in ok:
            return reply
        if reply.status in (401, 403):
            raise DestinationAuthError(
                f"Intercom rejected the access token (HTTP {reply.status} on {method} "
                f"{path.split('?')[0]} at {self.base_url}): check INTERCOM_ACCESS_TOKEN and "
                f"INTERCOM_BASE_URL (US/EU/AU host): {_error_message(reply.body)}"
            )
        if reply.status is None:
            raise _Failed("network_error", reply.error, True)
        reason = "rate_limited" if reply.status == 429 else f"http_{reply.status}"
        raise _Failed(reason, _error_message(reply.body), reply.status in RETRYABLE_STATUSES)

    # -- privacy -------------------------------------------------------------------------
    def forget(self, person_ids: list[str], action: str) -> list[ItemResult]:
        """delete -> `DELETE /contacts/{id}`; suppress -> `POST /contacts/{id}/archive`.
        A person without a contact has nothing to remove (ok)."""
        results = []
        for pid in person_ids:
            try:
                contact = self.contact_id(pid, create=False)
                if action == "delete":
                    self._call("DELETE", f"/contacts/{contact}", ok=(200, 404))
                else:
                    self._call("POST", f"/contacts/{contact}/archive", ok=(200, 404))
                with self._lock:
                    self._contacts.pop(pid, None)
                results.append(ItemResult(pid, True))
            except _Failed as failed:
                ok = failed.reason == UNMATCHED_REASON
                results.append(ItemResult(pid, ok, "" if ok else failed.reason, "", failed.message))
        return results


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_message(body: bytes) -> str:
    """First error of Intercom's `{"type":"error.list","errors":[{"code","message"}]}`."""
    errors = _json(body).get("errors") or []
    if errors and isinstance(errors[0], dict):
        return f"{errors[0].get('code', '')}: {errors[0].get('message', '')}"[:500]
    return body[:200].decode("utf-8", "replace")
