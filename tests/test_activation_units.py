"""Pure pieces of the activation sync: ULIDs, limits, packing, diffing, the token bucket."""

from __future__ import annotations

import time

import pytest

from orchestration.activation.batching import pack_batches
from orchestration.activation.destinations.base import OutgoingItem
from orchestration.activation.ids import decode_ulid_timestamp_ms, encode_ulid, event_ulid
from orchestration.activation.limits import check_item, encode_item
from orchestration.activation.payload import diff_attributes
from orchestration.activation.ratelimit import TokenBucket
from orchestration.activation.redact import basic_auth_token, redact


def test_ulid_known_vectors_and_determinism():
    # all-zero and all-one ULIDs from the ULID spec's bounds
    assert encode_ulid(0, bytes(10)) == "0" * 26
    assert encode_ulid(2**48 - 1, b"\xff" * 10) == "7" + "Z" * 25
    a = event_ulid("u1", "segment_entered", 1_700_000_000, "trial")
    assert a == event_ulid("u1", "segment_entered", 1_700_000_000, "trial")
    assert len(a) == 26 and set(a) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert decode_ulid_timestamp_ms(a) == 1_700_000_000_000
    others = {
        event_ulid("u1", "segment_entered", 1_700_000_000, "paying"),
        event_ulid("u2", "segment_entered", 1_700_000_000, "trial"),
        event_ulid("u1", "segment_exited", 1_700_000_000, "trial"),
        event_ulid("u1", "segment_entered", 1_700_000_001, "trial"),
    }
    assert a not in others and len(others) == 4


def identify(attrs, person="p1"):
    return {
        "type": "person",
        "identifiers": {"id": person},
        "action": "identify",
        "attributes": attrs,
    }


@pytest.mark.parametrize(
    ("item", "field", "fragment"),
    [
        (identify({"a": 1}, person="x" * 151), "identifiers.id", "150 bytes"),
        (identify({"n" * 151: 1}), "attributes.nnnn", "name cannot be longer than 150"),
        (identify({"v": "é" * 501}), "attributes.v", "1000 bytes"),  # 1002 bytes, 501 chars
        (identify({f"a{i}": 1 for i in range(301)}), "attributes", "300 attributes"),
        (identify({"_hidden": 1}), "attributes._hidden", "reserved"),
        (
            {
                "type": "person",
                "identifiers": {"id": "p"},
                "action": "event",
                "name": "e" * 101,
                "attributes": {},
            },
            "name",
            "100 bytes",
        ),
        (
            {
                "type": "person",
                "identifiers": {"id": "p"},
                "action": "event",
                "name": "e",
                "attributes": {"blob": "z" * 100_001},
            },
            "attributes",
            "100000 bytes",
        ),
    ],
)
def test_documented_limits_fail_locally(item, field, fragment):
    violation = check_item(item)
    assert violation is not None and violation.field.startswith(field)
    assert fragment in violation.message


def test_item_within_limits_passes_and_item_over_32kb_fails():
    assert check_item(identify({"v": "x" * 1000, "n": 1.5, "b": True})) is None
    big = identify({f"k{i}": "x" * 990 for i in range(40)})  # every value legal, item ~40 KB
    assert check_item(big).reason == "too_large"


def test_pack_batches_respects_bytes_items_and_order():
    items = [OutgoingItem("person", str(i), str(i), {}, b"x" * 100) for i in range(10)]
    by_items = list(pack_batches(items, max_items=4, max_bytes=10_000))
    assert [len(b) for b in by_items] == [4, 4, 2]
    by_bytes = list(pack_batches(items, max_items=100, max_bytes=12 + 3 * 100 + 2))
    assert [len(b) for b in by_bytes] == [3, 3, 3, 1]
    for batch in by_bytes:
        body = b'{"batch":[' + b",".join(i.encoded for i in batch) + b"]}"
        assert len(body) <= 12 + 3 * 100 + 2
    assert [i.key for b in by_bytes for i in b] == [str(i) for i in range(10)]


def test_diff_sends_changes_and_clears_removed_with_empty_string():
    previous = {"segment_trial": True, "segments": "trial", "churn_probability": 0.2}
    desired = {"segment_paying": True, "segments": "paying", "churn_probability": 0.2}
    assert diff_attributes(previous, desired) == {
        "segment_paying": True,
        "segments": "paying",
        "segment_trial": "",
    }
    assert diff_attributes(previous, {}) == {k: "" for k in previous}
    assert diff_attributes({"x": 1}, {"x": True}) == {"x": True}  # 1 == True in Python, not JSON


def test_token_bucket_spaces_requests():
    bucket = TokenBucket(rate=50, burst=5)
    started = time.perf_counter()
    for _ in range(25):
        bucket.acquire()
    elapsed = time.perf_counter() - started
    assert 0.35 <= elapsed < 1.5  # (25 - 5) / 50 = 0.4 s


def test_redact_masks_keys_and_authorization_headers():
    token = basic_auth_token("site", "secret-key")
    text = f"failed: {{'Authorization': 'Basic {token}'}} key=secret-key"
    cleaned = redact(text, ("secret-key", token))
    assert "secret-key" not in cleaned and token not in cleaned


def test_encode_item_is_compact_utf8():
    assert encode_item({"a": "é"}) == '{"a":"é"}'.encode()


def test_transport_waits_for_the_vendor_reset_header():
    """Retry-After first; else X-Ratelimit-Reset (LaunchDarkly: epoch ms; Intercom: epoch s);
    else one rate window for a 429, backoff for a 5xx."""
    from orchestration.activation.destinations.base import DeliveryStats
    from orchestration.activation.destinations.http import HttpTransport, RateHeaders

    def transport(headers: RateHeaders) -> HttpTransport:
        return HttpTransport(
            "http://127.0.0.1:9",
            headers={},
            stats=DeliveryStats(),
            rate_limit=0,
            retryable=frozenset({429, 503}),
            rate_headers=headers,
            clock=lambda: 1_000.0,
        )

    ld = transport(RateHeaders("X-Ratelimit-Reset", 1000.0, window_s=10.0))
    assert ld._announced_wait(429, {"X-Ratelimit-Reset": "1002500"}) == pytest.approx(2.51)
    assert ld._announced_wait(429, {"Retry-After": "4", "X-Ratelimit-Reset": "1002500"}) == 4
    assert ld._announced_wait(429, {}) == 10.0
    assert ld._announced_wait(503, {}) is None
    intercom = transport(RateHeaders("X-RateLimit-Reset", 1.0, window_s=10.0))
    assert intercom._announced_wait(429, {"X-RateLimit-Reset": "1003"}) == pytest.approx(3.01)
