"""Customer.io Track API limits, checked locally before anything is sent.

Values come from the Track API spec (see docs: /work/shared/reference/customerio-api.md §1.6).
A row that breaks a limit fails locally with a reason instead of costing a request and a 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_ID_BYTES = 150
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES_PER_CALL = 300
MAX_EVENT_NAME_BYTES = 100
MAX_EVENT_DATA_BYTES = 100_000
MAX_ITEM_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500_000
TARGET_BATCH_BYTES = 475_000  # headroom under 500 KB, as Customer.io's own CDP client does


@dataclass(frozen=True)
class Violation:
    """Why an item cannot be sent; shaped like a 207 error item (reason, field, message)."""

    reason: str
    field: str
    message: str


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _longer_than(text: str, limit: int) -> bool:
    """UTF-8 size > limit; a str of n characters is at most 4n bytes, so short ones are not
    encoded (this check runs for every attribute of every changed person)."""
    return len(text) * 4 > limit and _nbytes(text) > limit


def _value_too_long(value: Any) -> bool:
    if isinstance(value, str):
        return _longer_than(value, MAX_ATTRIBUTE_VALUE_BYTES)
    if value is None or isinstance(value, bool | int | float):
        return False  # a JSON scalar is far below 1000 bytes
    return _nbytes(json.dumps(value)) > MAX_ATTRIBUTE_VALUE_BYTES


def encode_item(item: dict[str, Any]) -> bytes:
    """The exact bytes an item occupies inside a batch request body."""
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_item(item: dict[str, Any], encoded: bytes | None = None) -> Violation | None:
    """First documented limit a v2 person item breaks, or None when it is sendable.
    `encoded` is the item's encode_item() bytes when the caller already has them."""
    person_id = str(item.get("identifiers", {}).get("id", ""))
    if not person_id:
        return Violation("invalid", "identifiers.id", "id cannot be an empty string")
    if _nbytes(person_id) > MAX_ID_BYTES:
        return Violation(
            "invalid", "identifiers.id", f"id cannot be longer than {MAX_ID_BYTES} bytes"
        )
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, dict):
        return Violation("invalid", "attributes", "event data must be a hash")
    if item.get("action") == "event":
        name = str(item.get("name", ""))
        if not name.strip():
            return Violation("invalid", "name", "event name must not be blank")
        if _nbytes(name) > MAX_EVENT_NAME_BYTES:
            return Violation(
                "invalid", "name", f"event name cannot be longer than {MAX_EVENT_NAME_BYTES} bytes"
            )
        if _nbytes(json.dumps(attributes)) > MAX_EVENT_DATA_BYTES:
            return Violation(
                "invalid",
                "attributes",
                f"event data cannot be longer than {MAX_EVENT_DATA_BYTES} bytes",
            )
    else:
        if len(attributes) > MAX_ATTRIBUTES_PER_CALL:
            return Violation(
                "invalid",
                "attributes",
                f"cannot identify more than {MAX_ATTRIBUTES_PER_CALL} attributes in one request",
            )
        for name, value in attributes.items():
            if name.startswith("_"):
                return Violation(
                    "invalid",
                    f"attributes.{name}",
                    "attribute names starting with '_' are reserved",
                )
            if _longer_than(name, MAX_ATTRIBUTE_NAME_BYTES):
                return Violation(
                    "invalid",
                    f"attributes.{name[:40]}",
                    f"attribute name cannot be longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes",
                )
            if _value_too_long(value):
                return Violation(
                    "invalid",
                    f"attributes.{name}",
                    f"value for attribute '{name}' cannot be longer than "
                    f"{MAX_ATTRIBUTE_VALUE_BYTES} bytes",
                )
    if len(encoded if encoded is not None else encode_item(item)) > MAX_ITEM_BYTES:
        return Violation("too_large", "", f"item is larger than {MAX_ITEM_BYTES} bytes")
    return None
