"""Conformance of the fake Intercom with the documented REST API.

Each check cites its page. SPEC = Intercom/Intercom-OpenAPI descriptions/2.16/api.intercom.io.yaml
(the source of https://developers.intercom.com/docs/references/rest-api/api.intercom.io/);
ERRORS = https://developers.intercom.com/docs/references/2.4/rest-api/contacts/update-contact/
(error.list shape); RATE = https://developers.intercom.com/docs/references/2.17/rest-api/errors/rate-limiting;
EVENTS = SPEC `/events` description (202, 10 metadata keys, de-dup on created_at).
"""

from __future__ import annotations

import time

import pytest
import requests

from orchestration.activation.fake_http import FaultConfig
from orchestration.activation.fake_intercom import FakeIntercom

TOKEN = "ic-secret-token"


@pytest.fixture
def fake():
    with FakeIntercom(token=TOKEN) as server:
        yield server


def call(fake, method, path, json=None, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}", "Intercom-Version": "2.14"}
    return requests.request(method, fake.url + path, json=json, headers=headers, timeout=5)


def test_bearer_auth_and_error_list_shape(fake):
    """SPEC securitySchemes (bearer); ERRORS: {"type":"error.list","request_id","errors":[..]}."""
    denied = call(fake, "GET", "/data_attributes?model=contact", token="nope")
    assert denied.status_code == 401
    body = denied.json()
    assert body["type"] == "error.list" and body["request_id"] and body["errors"][0]["code"]


def test_create_contact_needs_identity_and_409_on_duplicate(fake):
    """SPEC create_contact_request (email or external_id); duplicate -> 409 conflict."""
    assert call(fake, "POST", "/contacts", {"role": "user"}).status_code == 400
    created = call(fake, "POST", "/contacts", {"role": "user", "external_id": "u1"})
    assert created.status_code == 200 and created.json()["external_id"] == "u1"
    again = call(fake, "POST", "/contacts", {"role": "user", "external_id": "u1"})
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "conflict"


def test_find_by_external_id_and_search_by_email(fake):
    """SPEC ShowContactByExternalId; SearchContacts with {"field","operator":"=","value"}."""
    contact_id = fake.add_contact(email="a@example.com")
    assert call(fake, "GET", "/contacts/find_by_external_id/u9").status_code == 404
    query = {"query": {"field": "email", "operator": "=", "value": "a@example.com"}}
    found = call(fake, "POST", "/contacts/search", query).json()
    assert [c["id"] for c in found["data"]] == [contact_id]


def test_custom_attributes_need_definition_and_null_clears(fake):
    """SPEC create_data_attribute_request + UpdateContact: attributes merge, null clears;
    an undefined attribute is rejected (UNVERIFIED knob, on by default)."""
    contact_id = fake.add_contact(external_id="u1")
    undefined = call(fake, "PUT", f"/contacts/{contact_id}", {"custom_attributes": {"band": "x"}})
    assert undefined.status_code == 400
    body = {"name": "band", "model": "contact", "data_type": "string"}
    assert call(fake, "POST", "/data_attributes", body).json()["full_name"] == (
        "custom_attributes.band"
    )
    call(fake, "PUT", f"/contacts/{contact_id}", {"custom_attributes": {"band": "high"}})
    assert fake.by_external_id()["u1"]["custom_attributes"] == {"band": "high"}
    call(fake, "PUT", f"/contacts/{contact_id}", {"custom_attributes": {"band": None}})
    assert fake.by_external_id()["u1"]["custom_attributes"] == {}


def test_tags_create_attach_detach(fake):
    """SPEC createTag (create or update by name), attachTagToContact, detachTagFromContact."""
    contact_id = fake.add_contact(external_id="u1")
    tag = call(fake, "POST", "/tags", {"name": "segflow-trial"}).json()
    assert call(fake, "POST", "/tags", {"name": "segflow-trial"}).json()["id"] == tag["id"]
    call(fake, "POST", f"/contacts/{contact_id}/tags", {"id": tag["id"]})
    assert fake.by_external_id()["u1"]["tags"] == {"segflow-trial"}
    call(fake, "DELETE", f"/contacts/{contact_id}/tags/{tag['id']}")
    assert fake.by_external_id()["u1"]["tags"] == set()


def test_events_202_dedup_unknown_user_and_ten_metadata_keys(fake):
    """EVENTS: 202 empty body; 404 for an unknown user; duplicates (same created_at) still
    202 but stored once; only the first 10 metadata keys are kept."""
    fake.add_contact(external_id="u1")
    metadata = {f"k{i:02d}": i for i in range(12)}
    event = {
        "event_name": "segment_entered",
        "created_at": 1700000000,
        "user_id": "u1",
        "metadata": metadata,
    }
    first = call(fake, "POST", "/events", event)
    assert first.status_code == 202 and first.content == b""
    assert call(fake, "POST", "/events", event).status_code == 202
    assert len(fake.events) == 1 and len(fake.events[0]["metadata"]) == 10
    unknown = call(fake, "POST", "/events", {**event, "user_id": "ghost"})
    assert unknown.status_code == 404


def test_delete_and_archive(fake):
    """SPEC DeleteContact (`deleted: true`), ArchiveContact (`archived: true`)."""
    a, b = fake.add_contact(external_id="a"), fake.add_contact(external_id="b")
    assert call(fake, "DELETE", f"/contacts/{a}").json()["deleted"] is True
    assert call(fake, "POST", f"/contacts/{b}/archive").json()["archived"] is True
    assert set(fake.by_external_id()) == {"b"} and fake.by_external_id()["b"]["archived"]


def test_rate_limit_headers_and_429():
    """RATE: X-RateLimit-Limit/Remaining/Reset (Unix seconds); 429 rate_limit_exceeded."""
    with FakeIntercom(token=TOKEN, faults=FaultConfig(rate_limit=2)) as fake:
        ok = call(fake, "GET", "/data_attributes?model=contact")
        assert (ok.headers["X-RateLimit-Limit"], ok.headers["X-RateLimit-Remaining"]) == ("2", "1")
        call(fake, "GET", "/data_attributes?model=contact")
        limited = call(fake, "GET", "/data_attributes?model=contact")
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == "rate_limit_exceeded"
    assert time.time() < int(limited.headers["X-RateLimit-Reset"]) <= time.time() + 12
