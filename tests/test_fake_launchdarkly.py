"""Conformance of the fake LaunchDarkly with the documented REST API (segments).

Each check cites its page. LD-API = https://launchdarkly.com/docs/api (overview: auth,
errors, rate limiting, versioning; mirrored in launchdarkly/api-client-python README.md);
SEG-POST = https://launchdarkly.com/docs/api/segments/post-segment;
SEG-PATCH = https://launchdarkly.com/docs/api/segments/patch-segment (semantic patch
instructions; api-client-python docs/SegmentsApi.md);
LIST-SEG = https://launchdarkly.com/docs/home/flags/rule-based-segments (list-based <= 15,000).
"""

from __future__ import annotations

import time

import pytest
import requests

from orchestration.activation.fake_http import FaultConfig
from orchestration.activation.fake_launchdarkly import FakeLaunchDarkly

TOKEN = "api-0123-secret"
SP = "application/json; domain-model=launchdarkly.semanticpatch"
BASE = "/api/v2/segments/default/production"


@pytest.fixture
def fake():
    with FakeLaunchDarkly(token=TOKEN) as server:
        yield server


def call(fake, method, path, json=None, content_type="application/json", token=TOKEN):
    headers = {"Authorization": token, "Content-Type": content_type, "LD-API-Version": "20240415"}
    return requests.request(method, fake.url + path, json=json, headers=headers, timeout=5)


def patch(fake, key, instructions, env="production"):
    body = {"environmentKey": env, "instructions": instructions}
    return call(fake, "PATCH", f"{BASE}/{key}", body, content_type=SP)


def test_auth_is_the_raw_token_and_errors_have_code_message_id(fake):
    """LD-API "Authentication": `Authorization: <token>`, no Bearer; "Errors": code/message/id."""
    assert call(fake, "GET", "/api/v2/projects/default").status_code == 200
    denied = call(fake, "GET", "/api/v2/projects/default", token=f"Bearer {TOKEN}")
    assert denied.status_code == 401
    assert set(denied.json()) == {"code", "message", "id"}


def test_create_segment_201_then_409_on_duplicate_key(fake):
    """SEG-POST: 201 with the segment; an existing key is a 409 conflict."""
    body = {"name": "Trial", "key": "segflow-trial", "tags": ["segflow"]}
    created = call(fake, "POST", BASE, body)
    assert created.status_code == 201 and created.json()["key"] == "segflow-trial"
    assert created.json()["included"] == [] and created.json()["unbounded"] is False
    again = call(fake, "POST", BASE, body)
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_semantic_patch_needs_its_content_type_and_environment_key(fake):
    """SEG-PATCH: without `domain-model=launchdarkly.semanticpatch` the body is JSON Patch
    (400 here); `environmentKey` is required for segments."""
    call(fake, "POST", BASE, {"name": "T", "key": "t"})
    ins = [{"kind": "addIncludedTargets", "contextKind": "user", "values": ["u1"]}]
    plain = call(fake, "PATCH", f"{BASE}/t", {"environmentKey": "production", "instructions": ins})
    assert plain.status_code == 400
    assert call(fake, "PATCH", f"{BASE}/t", {"instructions": ins}, SP).status_code == 400
    assert fake.members("t") == set()


def test_add_and_remove_included_targets_read_back(fake):
    """SEG-PATCH: addIncludedTargets / removeIncludedTargets take contextKind + values; the
    GET shows user targets in `included`, other kinds in `includedContexts`."""
    call(fake, "POST", BASE, {"name": "T", "key": "t"})
    add = [{"kind": "addIncludedTargets", "contextKind": "user", "values": ["u1", "u2", "u3"]}]
    assert patch(fake, "t", add).status_code == 200
    remove = [{"kind": "removeIncludedTargets", "contextKind": "user", "values": ["u2"]}]
    org = [{"kind": "addIncludedTargets", "contextKind": "org", "values": ["o1"]}]
    assert patch(fake, "t", remove + org).status_code == 200
    got = call(fake, "GET", f"{BASE}/t").json()
    assert got["included"] == ["u1", "u3"]
    assert got["includedContexts"] == [{"contextKind": "org", "values": ["o1"]}]


def test_more_than_1500_target_operations_is_refused(fake):
    """SEG-PATCH: error if the number of operations on targets exceeds the batch limit of 1,500."""
    call(fake, "POST", BASE, {"name": "T", "key": "t"})
    values = [f"u{i}" for i in range(1501)]
    reply = patch(
        fake, "t", [{"kind": "addIncludedTargets", "contextKind": "user", "values": values}]
    )
    assert reply.status_code == 400 and "1500" in reply.json()["message"]
    assert fake.members("t") == set()


def test_semantic_patch_is_all_or_nothing(fake):
    """SEG-PATCH / LD-API "semantic patch": any invalid instruction -> nothing applied
    (here a key both included and excluded)."""
    call(fake, "POST", BASE, {"name": "T", "key": "t"})
    ins = [
        {"kind": "addIncludedTargets", "contextKind": "user", "values": ["u1", "u2"]},
        {"kind": "addExcludedTargets", "contextKind": "user", "values": ["u2"]},
    ]
    assert patch(fake, "t", ins).status_code == 400
    assert fake.members("t") == set()


def test_unknown_segment_project_or_environment_is_404(fake):
    """LD-API "Errors": 404 not_found."""
    assert patch(fake, "nope", [{"kind": "addIncludedTargets", "values": ["u"]}]).status_code == 404
    assert call(fake, "GET", "/api/v2/segments/other/production").status_code == 404
    assert call(fake, "GET", "/api/v2/segments/default/staging").status_code == 404


def test_list_is_paginated_with_default_limit_20(fake):
    """LD-API changelog for 20240415: list segments is paginated, default limit 20."""
    for i in range(25):
        call(fake, "POST", BASE, {"name": f"S{i}", "key": f"s{i:02d}"})
    first = call(fake, "GET", BASE).json()
    assert len(first["items"]) == 20 and first["totalCount"] == 25
    assert len(call(fake, "GET", BASE + "?offset=20").json()["items"]) == 5


def test_rate_limit_429_with_reset_in_epoch_milliseconds():
    """LD-API "Rate limiting": 429; X-Ratelimit-Route-Remaining; X-Ratelimit-Reset in epoch ms."""
    with FakeLaunchDarkly(token=TOKEN, faults=FaultConfig(rate_limit=2)) as fake:
        ok = call(fake, "GET", "/api/v2/projects/default")
        assert ok.headers["X-Ratelimit-Route-Remaining"] == "1"
        call(fake, "GET", "/api/v2/projects/default")
        limited = call(fake, "GET", "/api/v2/projects/default")
    assert limited.status_code == 429
    reset_ms = int(limited.headers["X-Ratelimit-Reset"])
    assert time.time() * 1000 < reset_ms <= (time.time() + 10.5) * 1000
