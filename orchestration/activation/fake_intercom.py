"""A local fake of the Intercom REST API (contacts, data attributes, tags, data events),
written from the docs (stack-notes-turn3.md §2; Intercom-OpenAPI 2.16 spec and
https://developers.intercom.com/docs/references/rest-api/). Conformance checks:
tests/test_fake_intercom.py.

Implements: `Authorization: Bearer <token>` (401 `error.list` otherwise); contacts create
(`external_id` or `email` required, 409 `conflict` on a duplicate), update (`PUT`, custom
attributes merged, null clears), find by external id, search by `email` / `external_id`
(`=`), delete, archive; data attributes list/create; tags create-or-update by name, attach,
detach; `POST /events` (202, empty body; 404 for an unknown user; de-duplicated on
(user, event_name, created_at); only the first 10 metadata keys kept). Rate limiting per fixed
10 s window with `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix s)
and a 429 `rate_limit_exceeded`. Knobs for what the docs leave open (UNVERIFIED): writing an
undefined custom attribute is a 400 `parameter_invalid`, a string value over 255 characters
is a 400.

Run: `segflow fake-intercom --port 8767 --token T`; read back with `GET /_fake/state`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import uuid
from typing import Any
from urllib.parse import unquote

from .fake_http import FakeAPI, FaultConfig, add_fake_arguments, command_faults, serve_fake

MAX_METADATA_KEYS = 10
MAX_STRING_VALUE = 255


class FakeIntercom(FakeAPI):
    label = "Intercom"

    def __init__(
        self,
        token: str = "fake-intercom-token",
        faults: FaultConfig | None = None,
        strict_attributes: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(faults, **kw)
        self.token = token
        self.strict_attributes = strict_attributes
        self.contacts: dict[str, dict[str, Any]] = {}
        self.data_attributes: dict[str, str] = {}
        self.tags: dict[str, str] = {}  # id -> name
        self.events: list[dict[str, Any]] = []
        self.event_receipts = 0
        self._ids = itertools.count(1)

    # -- read-back -----------------------------------------------------------------------
    def add_contact(self, external_id: str | None = None, email: str | None = None) -> str:
        """Seed a contact (as if created in Intercom); returns its Intercom id."""
        with self.lock:
            return self._new_contact({"role": "user", "external_id": external_id, "email": email})

    def by_external_id(self) -> dict[str, dict[str, Any]]:
        """external_id -> {custom_attributes, tags (names), archived}."""
        with self.lock:
            return {
                c["external_id"]: {
                    "custom_attributes": dict(c["custom_attributes"]),
                    "tags": {self.tags[t] for t in c["tags"]},
                    "archived": c["archived"],
                }
                for c in self.contacts.values()
                if c["external_id"]
            }

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": len(self.request_log),
            "status_counts": dict(self.status_counts),
            "contacts": len(self.contacts),
            "events": len(self.events),
            "tags": sorted(self.tags.values()),
        }

    # -- protocol ------------------------------------------------------------------------
    def authorized(self, headers: Any) -> bool:
        return headers.get("Authorization") == f"Bearer {self.token}"

    def error_body(self, status: int, code: str, message: str) -> Any:
        return {
            "type": "error.list",
            "request_id": str(uuid.uuid4()),
            "errors": [{"code": code, "message": message}],
        }

    def rate_headers(self, limit: int, remaining: int, reset_s: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset_s) + 1),
        }

    def _error(self, status: int, code: str, message: str) -> tuple[int, Any]:
        return status, self.error_body(status, code, message)

    def route(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return self._error(400, "parameter_invalid", "body is not valid JSON")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        key = (method, parts[0] if parts else "", len(parts))
        if key == ("GET", "data_attributes", 1):
            rows = [
                {
                    "type": "data_attribute",
                    "name": n,
                    "full_name": f"custom_attributes.{n}",
                    "data_type": t,
                    "model": "contact",
                    "api_writable": True,
                }
                for n, t in sorted(self.data_attributes.items())
            ]
            return 200, {"type": "list", "data": rows}
        if key == ("POST", "data_attributes", 1):
            return self._create_attribute(data)
        if key == ("POST", "tags", 1):
            return self._tag(data)
        if key == ("POST", "events", 1):
            return self._event(data)
        if parts[0] != "contacts":
            return self._error(404, "not_found", "Resource Not Found")
        return self._contacts_route(method, parts, data)

    def _contacts_route(self, method: str, parts: list[str], data: Any) -> tuple[int, Any]:
        if method == "POST" and len(parts) == 1:
            return self._create_contact(data)
        if method == "POST" and parts[1:] == ["search"]:
            return self._search(data)
        if method == "GET" and len(parts) == 3 and parts[1] == "find_by_external_id":
            found = self._find("external_id", parts[2])
            return (
                (200, self._render(found))
                if found
                else self._error(404, "not_found", "User Not Found")
            )
        contact = self.contacts.get(parts[1]) if len(parts) > 1 else None
        if contact is None:
            return self._error(404, "not_found", "User Not Found")
        if method == "PUT" and len(parts) == 2:
            return self._update(contact, data)
        if method == "DELETE" and len(parts) == 2:
            del self.contacts[contact["id"]]
            return 200, _contact_ack(contact, "deleted")
        if method == "POST" and parts[2:] == ["archive"]:
            contact["archived"] = True
            return 200, _contact_ack(contact, "archived")
        if method == "POST" and parts[2:] == ["tags"]:
            tag_id = str((data or {}).get("id", ""))
            if tag_id not in self.tags:
                return self._error(404, "tag_not_found", "Tag not found")
            contact["tags"].add(tag_id)
            return 200, {"type": "tag", "id": tag_id, "name": self.tags[tag_id]}
        if method == "DELETE" and len(parts) == 4 and parts[2] == "tags":
            if parts[3] not in self.tags:
                return self._error(404, "tag_not_found", "Tag not found")
            contact["tags"].discard(parts[3])
            return 200, {"type": "tag", "id": parts[3], "name": self.tags[parts[3]]}
        return self._error(404, "not_found", "Resource Not Found")

    # -- contacts ------------------------------------------------------------------------
    def _find(self, field: str, value: Any) -> dict[str, Any] | None:
        for contact in self.contacts.values():
            if value and contact.get(field) == value:
                return contact
        return None

    def _new_contact(self, data: dict[str, Any]) -> str:
        contact_id = f"{next(self._ids):024x}"
        self.contacts[contact_id] = {
            "id": contact_id,
            "role": data.get("role") or "user",
            "external_id": data.get("external_id"),
            "email": data.get("email"),
            "custom_attributes": {},
            "tags": set(),
            "archived": False,
        }
        return contact_id

    def _create_contact(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not (data.get("external_id") or data.get("email")):
            return self._error(400, "parameter_invalid", "email or external_id is required")
        for field in ("external_id", "email"):
            existing = self._find(field, data.get(field))
            if existing:
                return self._error(
                    409,
                    "conflict",
                    f"A contact matching those details already exists with id={existing['id']}",
                )
        contact_id = self._new_contact(data)
        status, body = self._update(
            self.contacts[contact_id], {"custom_attributes": data.get("custom_attributes") or {}}
        )
        if status != 200:
            del self.contacts[contact_id]
        return status, body

    def _update(self, contact: dict[str, Any], data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict):
            return self._error(400, "parameter_invalid", "body must be an object")
        custom = data.get("custom_attributes") or {}
        for name, value in custom.items():
            if self.strict_attributes and name not in self.data_attributes:
                return self._error(
                    400, "parameter_invalid", f"Custom attribute '{name}' does not exist"
                )
            if isinstance(value, str) and len(value) > MAX_STRING_VALUE:
                return self._error(
                    400,
                    "parameter_invalid",
                    f"'{name}' is longer than {MAX_STRING_VALUE} characters",
                )
        if data.get("external_id"):
            other = self._find("external_id", data["external_id"])
            if other and other is not contact:
                return self._error(409, "conflict", "external_id already in use")
            contact["external_id"] = data["external_id"]
        for name, value in custom.items():
            if value is None:
                contact["custom_attributes"].pop(name, None)
            else:
                contact["custom_attributes"][name] = value
        return 200, self._render(contact)

    def _search(self, data: Any) -> tuple[int, Any]:
        query = (data or {}).get("query") or {}
        if query.get("operator") != "=" or query.get("field") not in ("email", "external_id"):
            return self._error(400, "parameter_invalid", "this fake supports field = value only")
        found = [c for c in self.contacts.values() if c.get(query["field"]) == query.get("value")]
        return 200, {
            "type": "list",
            "data": [self._render(c) for c in found],
            "total_count": len(found),
        }

    def _render(self, contact: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "contact",
            **{k: v for k, v in contact.items() if k != "tags"},
            "tags": {
                "type": "list",
                "data": [{"type": "tag", "id": t} for t in sorted(contact["tags"])],
            },
        }

    # -- attributes, tags, events --------------------------------------------------------
    def _create_attribute(self, data: Any) -> tuple[int, Any]:
        name, model = (data or {}).get("name"), (data or {}).get("model")
        if not name or model not in ("contact", "company"):
            return self._error(400, "parameter_invalid", "name and model are required")
        if name in self.data_attributes:
            return self._error(400, "parameter_invalid", f"attribute {name} already exists")
        self.data_attributes[name] = data.get("data_type", "string")
        return 200, {
            "type": "data_attribute",
            "name": name,
            "full_name": f"custom_attributes.{name}",
            "data_type": self.data_attributes[name],
            "api_writable": True,
        }

    def _tag(self, data: Any) -> tuple[int, Any]:
        name = (data or {}).get("name")
        if not name:
            return self._error(400, "parameter_invalid", "name is required")
        tag_id = next((i for i, n in self.tags.items() if n == name), None)
        if tag_id is None:
            tag_id = str(next(self._ids))
            self.tags[tag_id] = name
        return 200, {"type": "tag", "id": tag_id, "name": name}

    def _event(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not data.get("event_name") or not data.get("created_at"):
            return self._error(400, "parameter_invalid", "event_name and created_at are required")
        contact = (
            self._find("external_id", data.get("user_id"))
            or self.contacts.get(str(data.get("id", "")))
            or self._find("email", data.get("email"))
        )
        if contact is None:
            return self._error(404, "not_found", "User Not Found")
        self.event_receipts += 1
        name = str(data["event_name"]).lower().replace(".", "-").replace("$", "-")
        key = (contact["id"], name, int(data["created_at"]))
        if any(e["_key"] == key for e in self.events):
            return 202, None  # duplicate: still 202, not stored again
        metadata = dict(list((data.get("metadata") or {}).items())[:MAX_METADATA_KEYS])
        self.events.append(
            {
                "_key": key,
                "user_id": contact["external_id"],
                "event_name": name,
                "created_at": int(data["created_at"]),
                "metadata": metadata,
            }
        )
        return 202, None


def _contact_ack(contact: dict[str, Any], flag: str) -> dict[str, Any]:
    """Intercom's reply to deleting / archiving a contact."""
    return {
        "id": contact["id"],
        "external_id": contact["external_id"],
        "type": "contact",
        flag: True,
    }


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return add_fake_arguments(parser, port=8767, token_env="INTERCOM_ACCESS_TOKEN", rate_limit=1666)


def serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; prints the URL (never the token)."""
    fake = FakeIntercom(
        token=args.token or os.environ.get("INTERCOM_ACCESS_TOKEN") or "fake-intercom-token",
        faults=command_faults(args),
        host=args.host,
        port=args.port,
    )
    return serve_fake(fake, "Intercom", "INTERCOM_BASE_URL")
