"""`segflow serve` on the snapshot of a real segment run: the profile API, OFREP single and
bulk evaluation per spec, read keys separate from write keys, and the real openfeature-sdk
with openfeature-provider-ofrep evaluating the flow flag for known and unknown users."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason
from support.realtime import WRITE_KEY
from support.realtime_world import build_world, new_user_before_setup

from orchestration.realtime.flags import load_flags
from orchestration.realtime.profiles import ProfileReader
from orchestration.realtime.server import ProfileServer
from orchestration.segments import DEFAULT_FLOWS_PATH

READ_KEY = "rk_test_456"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("serve")
    world = build_world(directory)
    reader = ProfileReader(
        world.snapshot,
        directory / "state.sqlite",
        world.config,
        {s.name: s.rule.text for s in world.config.segments},
    )
    server = ProfileServer(
        ("127.0.0.1", 0), reader, load_flags(DEFAULT_FLOWS_PATH, world.config), [READ_KEY]
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, world
    server.shutdown()
    server.server_close()


def _get(server, path, key=READ_KEY):
    return requests.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"})


def _snapshot_row(world, user):
    with sqlite3.connect(world.snapshot) as db:
        return db.execute(
            "select segments, onboarding_flow, next_block, experiment_variant, scores "
            "from users where user_id = ?",
            (user,),
        ).fetchone()


def test_profile_of_a_known_user_matches_the_daily_run(served):
    server, world = served
    user = new_user_before_setup(world)
    segments, flow, block, variant, scores = _snapshot_row(world, user)
    body = _get(server, f"/v1/profiles/{user}").json()
    assert body["known"] is True and body["source"] == "daily"
    assert [s["name"] for s in body["segments"]] == json.loads(segments)
    assert all(s["reason"] for s in body["segments"])
    assert (body["onboarding_flow"], body["next_block"]) == (flow, block)
    assert body["experiment"] == {"name": "new_user_first_steps", "arm": variant}
    churn = json.loads(scores)
    assert body["scores"]["churn"]["score"] == pytest.approx(churn["churn_probability"])
    assert body["scores"]["churn"]["band"] == churn["churn_band"]


def test_unknown_user_gets_the_documented_default(served):
    server, _ = served
    body = _get(server, "/v1/profiles/nobody%20here").json()
    assert body == {
        "user_id": "nobody here",
        "known": False,
        "source": "default",
        "as_of": None,
        "segments": [],
        "primary_segment": None,
        "onboarding_flow": "default_onboarding",
        "next_block": "guided_setup_docs",
        "experiment": None,
        "scores": {},
    }


def test_keys_are_checked_and_write_keys_do_not_read(served):
    server, _ = served
    assert _get(server, "/v1/profiles/u1", key=WRITE_KEY).status_code == 401
    assert requests.get(f"{server.url}/v1/profiles/u1").status_code == 401
    ok = requests.get(f"{server.url}/v1/profiles/u1", headers={"X-API-Key": READ_KEY})
    assert ok.status_code == 200
    flag = requests.post(
        f"{server.url}/ofrep/v1/evaluate/flags/onboarding_flow",
        json={"context": {"targetingKey": "u1"}},
    )
    assert flag.status_code == 401


def test_ofrep_single_bulk_and_errors_per_spec(served):
    server, world = served
    user = new_user_before_setup(world)
    headers = {"Authorization": f"Bearer {READ_KEY}"}
    url = f"{server.url}/ofrep/v1/evaluate/flags"
    one = requests.post(
        f"{url}/onboarding_flow", json={"context": {"targetingKey": user}}, headers=headers
    ).json()
    assert one["key"] == "onboarding_flow" and one["value"] == "new_user_onboarding"
    assert one["reason"] == "TARGETING_MATCH" and one["variant"] == "new_user_onboarding"
    bulk = requests.post(url, json={"context": {"targetingKey": user}}, headers=headers)
    assert bulk.status_code == 200 and bulk.headers["ETag"]
    flags = {f["key"]: f for f in bulk.json()["flags"]}
    assert set(flags) == {
        "onboarding_flow",
        "next_content_block",
        "show_checklist",
        "onboarding_variant",
    }
    assert all("variant" in f for f in flags.values())
    assert flags["onboarding_variant"]["reason"] == "SPLIT"
    assert flags["show_checklist"]["value"] is (
        flags["next_content_block"]["value"] == "interactive_checklist"
    )
    same = requests.post(
        url,
        json={"context": {"targetingKey": user}},
        headers={**headers, "If-None-Match": bulk.headers["ETag"]},
    )
    assert same.status_code == 304 and same.content == b""
    missing = requests.post(
        f"{url}/nope", json={"context": {"targetingKey": user}}, headers=headers
    )
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    no_key = requests.post(f"{url}/onboarding_flow", json={"context": {}}, headers=headers)
    assert no_key.status_code == 400 and no_key.json()["errorCode"] == "TARGETING_KEY_MISSING"
    bad = requests.post(f"{url}/onboarding_flow", data=b"{", headers=headers)
    assert bad.status_code == 400 and bad.json()["errorCode"] == "PARSE_ERROR"


def test_openfeature_client_evaluates_the_flow_flag(served):
    server, world = served
    user = new_user_before_setup(world)
    api.set_provider(
        OFREPProvider(server.url, headers_factory=lambda: {"Authorization": f"Bearer {READ_KEY}"})
    )
    client = api.get_client()
    known = client.get_string_details(
        "onboarding_flow", "fallback", EvaluationContext(targeting_key=user)
    )
    assert known.value == "new_user_onboarding" and known.reason == Reason.TARGETING_MATCH
    unknown = client.get_string_details(
        "onboarding_flow", "fallback", EvaluationContext(targeting_key="never-seen")
    )
    assert unknown.value == "default_onboarding" and unknown.reason == Reason.DEFAULT
    checklist = client.get_boolean_value(
        "show_checklist", True, EvaluationContext(targeting_key="never-seen")
    )
    assert checklist is False
    missing = client.get_string_details(
        "no_such_flag", "fallback", EvaluationContext(targeting_key=user)
    )
    assert missing.value == "fallback" and missing.error_code is not None
