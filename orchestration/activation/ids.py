"""Deterministic event ids: a ULID whose 80 random bits come from a hash.

Customer.io de-duplicates events by `id` (a ULID). Deriving the id from what the event *is*
(person, name, discriminator, time) means a replay after a crash or a retry produces the same
id, so the destination drops the duplicate instead of triggering a campaign twice.
"""

from __future__ import annotations

import hashlib

CROCKFORD_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MAX_MS = (1 << 48) - 1


def encode_ulid(timestamp_ms: int, entropy: bytes) -> str:
    """Crockford-base32 ULID (26 chars) from a 48-bit ms timestamp and 10 bytes of entropy."""
    if not 0 <= timestamp_ms <= _MAX_MS:
        raise ValueError(f"ULID timestamp {timestamp_ms} ms is outside 0..2^48-1")
    if len(entropy) != 10:
        raise ValueError(f"ULID entropy must be 10 bytes, got {len(entropy)}")
    value = (timestamp_ms << 80) | int.from_bytes(entropy, "big")
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD_BASE32[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def decode_ulid_timestamp_ms(ulid: str) -> int:
    """The millisecond timestamp encoded in a ULID (used by tests and for debugging)."""
    value = 0
    for char in ulid.upper():
        value = (value << 5) | CROCKFORD_BASE32.index(char)
    return value >> 80


def event_ulid(person_id: str, event_name: str, event_time_s: int, discriminator: str = "") -> str:
    """ULID for one event occurrence. `discriminator` separates events that share person, name
    and time but are different facts (e.g. entering two segments on the same day)."""
    key = "\x1f".join((person_id, event_name, discriminator, str(event_time_s)))
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return encode_ulid(event_time_s * 1000, digest[:10])
