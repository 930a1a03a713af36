"""The fake Customer.io server's documented behaviour, probed with plain requests."""

from __future__ import annotations

import json

import pytest
import requests

from orchestration.activation.fake_customerio import FakeConfig, FakeCustomerIO, main

AUTH = ("s1", "k1")


@pytest.fixture
def fake():
    with FakeCustomerIO(FakeConfig(site_id="s1", api_key="k1")) as server:
        yield server


def test_auth_region_and_unknown_route(fake):
    assert requests.get(f"{fake.url}/api/v1/accounts/region", auth=("s1", "bad")).status_code == 401
    reply = requests.get(f"{fake.url}/api/v1/accounts/region", auth=AUTH)
    assert reply.status_code == 200 and reply.json()["region"] == "us"
    assert requests.get(f"{fake.url}/api/v1/nope", auth=AUTH).status_code == 404


def test_v1_identify_merges_and_removes_and_validates(fake):
    url = f"{fake.url}/api/v1/customers/a%2Bb%40x.io"
    assert requests.put(url, json={"plan": "pro", "seats": 3}, auth=AUTH).json() == {}
    requests.put(url, json={"seats": "", "role": "admin", "plan": None}, auth=AUTH)
    assert fake.people == {"a+b@x.io": {"role": "admin"}}
    too_long = requests.put(url, json={"v": "x" * 1001}, auth=AUTH)
    assert too_long.status_code == 400 and "1000 bytes" in too_long.json()["meta"]["error"]


def test_v1_events_dedupe_by_id_and_validate(fake):
    url = f"{fake.url}/api/v1/customers/p1/events"
    body = {"name": "signed_up", "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "data": {"a": 1}}
    assert requests.post(url, json=body, auth=AUTH).status_code == 200
    assert requests.post(url, json=body, auth=AUTH).status_code == 200
    assert len(fake.events) == 1 and fake.event_receipts[body["id"]] == 2
    bad = requests.post(url, json={"name": "x", "data": [1]}, auth=AUTH)
    assert bad.status_code == 400 and bad.json()["meta"]["error"] == "event data must be a hash"


def test_v2_batch_207_lists_only_bad_items(fake):
    batch = [
        {
            "type": "person",
            "identifiers": {"id": "ok"},
            "action": "identify",
            "attributes": {"a": 1},
        },
        {
            "type": "person",
            "identifiers": {"id": "bad"},
            "action": "identify",
            "attributes": {"v": "x" * 1001},
        },
        {
            "type": "person",
            "identifiers": {"id": "ev"},
            "action": "event",
            "name": "",
            "attributes": {},
        },
    ]
    reply = requests.post(f"{fake.url}/api/v2/batch", json={"batch": batch}, auth=AUTH)
    assert reply.status_code == 207
    errors = reply.json()["errors"]
    assert [(e["batch_index"], e["field"]) for e in errors] == [(1, "attributes.v"), (2, "name")]
    assert set(fake.people) == {"ok"}


def test_v2_oversize_request_status_is_a_knob(fake):
    body = json.dumps({"batch": [{"x": "y" * 600_000}]})
    assert requests.post(f"{fake.url}/api/v2/batch", data=body, auth=AUTH).status_code == 413
    fake.configure(oversize_status=400)
    assert requests.post(f"{fake.url}/api/v2/batch", data=body, auth=AUTH).status_code == 400


def test_rate_limit_429_with_and_without_retry_after(fake):
    fake.configure(rate_limit=2, rate_window_s=60)
    codes = [requests.get(f"{fake.url}/api/v1/accounts/region", auth=AUTH) for _ in range(3)]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert "Retry-After" not in codes[2].headers
    fake.configure(retry_after=3)
    reply = requests.get(f"{fake.url}/api/v1/accounts/region", auth=AUTH)
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "3"


def test_dropped_connection_and_injected_5xx(fake):
    fake.configure(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fake.url}/api/v1/accounts/region", auth=AUTH, timeout=2)
    fake.configure(drop_rate=0.0, fail_rate=1.0)
    reply = requests.get(f"{fake.url}/api/v1/accounts/region", auth=AUTH)
    assert reply.status_code in (500, 502, 503, 504)


def test_cli_parser_builds_config():
    with pytest.raises(SystemExit):
        main(["--help"])


def test_suppress_deletes_and_blocks_identify_until_unsuppress(fake):
    """customerio-api.md §1.3 (Track API `POST /api/v1/customers/{id}/suppress|unsuppress`)."""
    url = f"{fake.url}/api/v1/customers/p1"
    requests.put(url, json={"plan": "pro"}, auth=AUTH)
    assert requests.post(f"{url}/suppress", json={}, auth=AUTH).status_code == 200
    assert fake.people == {} and fake.suppressed == {"p1"}
    requests.put(url, json={"plan": "pro"}, auth=AUTH)  # 200 but not re-created
    assert fake.people == {}
    assert requests.post(f"{url}/unsuppress", json={}, auth=AUTH).status_code == 200
    requests.put(url, json={"plan": "team"}, auth=AUTH)
    assert fake.people == {"p1": {"plan": "team"}}


def test_merge_customers_primary_wins_and_secondary_goes(fake):
    """customerio-api.md §1.3 (`POST /api/v1/merge_customers` {primary, secondary})."""
    requests.put(f"{fake.url}/api/v1/customers/a", json={"plan": "pro"}, auth=AUTH)
    requests.put(f"{fake.url}/api/v1/customers/b", json={"plan": "free", "seats": 2}, auth=AUTH)
    requests.post(
        f"{fake.url}/api/v1/customers/b/events", json={"name": "x", "id": "E1"}, auth=AUTH
    )
    url = f"{fake.url}/api/v1/merge_customers"
    bad = requests.post(url, json={"primary": {"id": "a", "email": "e"}}, auth=AUTH)
    assert bad.status_code == 400
    ok = requests.post(url, json={"primary": {"id": "a"}, "secondary": {"id": "b"}}, auth=AUTH)
    assert ok.status_code == 200
    assert fake.people == {"a": {"plan": "pro", "seats": 2}}
    assert fake.events["E1"]["person_id"] == "a"


def test_anonymous_events_validate_and_dedupe(fake):
    """customerio-api.md §1.3/§1.5 (`POST /api/v1/events` with `anonymous_id`, id de-dup)."""
    url = f"{fake.url}/api/v1/events"
    body = {"name": " viewed_pricing ", "anonymous_id": "anon-1", "id": "A1", "data": {"p": 1}}
    assert requests.post(url, json=body, auth=AUTH).status_code == 200
    assert requests.post(url, json=body, auth=AUTH).status_code == 200
    assert requests.post(url, json={"name": ""}, auth=AUTH).status_code == 400
    events = fake.anonymous_events
    assert list(events) == ["A1"] and events["A1"]["name"] == "viewed_pricing"
