"""Browser clients: CORS preflight and headers on the collector and `segflow serve`
(SEGFLOW_CORS_ORIGINS, default none), and analytics.js's own requests (short paths, text/plain
body with the write key inside) accepted by the collector. Servers built from Settings, as the
CLI builds them, on a real redis-server."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import pytest
import requests
from support.realtime import WRITE_KEY
from support.realtime_world import new_user_before_setup

from orchestration.realtime import app
from orchestration.realtime.stream import RedisStream
from orchestration.settings import SettingError, Settings

APP = "https://app.example.com"
READ_KEY = "rk_cors"


@pytest.fixture
def env(monkeypatch, redis_url, world):
    for name, value in {
        "SEGFLOW_REDIS_URL": redis_url,
        "SEGFLOW_STREAM_KEY": "t:cors",
        "SEGFLOW_REALTIME_DIR": str(world.snapshot.parent),
        "SEGFLOW_SEGMENTS_FILE": str(world.segments_file),
        "SEGFLOW_TRIGGERS_FILE": str(world.triggers_file),
        "SEGFLOW_WRITE_KEYS": WRITE_KEY,
        "SEGFLOW_READ_KEYS": READ_KEY,
        "SEGFLOW_CORS_ORIGINS": f"{APP}, http://localhost:5173/",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@contextmanager
def running(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _preflight(url: str, origin: str, method: str = "POST") -> requests.Response:
    return requests.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


def test_origins_setting_is_validated(monkeypatch):
    monkeypatch.delenv("SEGFLOW_CORS_ORIGINS", raising=False)
    assert Settings.from_env().cors_origins == ()  # default: no browser origin
    monkeypatch.setenv("SEGFLOW_CORS_ORIGINS", "https://app.example.com/onboarding")
    with pytest.raises(SettingError, match="SEGFLOW_CORS_ORIGINS.*not an origin"):
        Settings.from_env()


def test_collector_preflight_and_analytics_js_requests(env, redis_url):
    settings = Settings.from_env()
    assert settings.cors_origins == (APP, "http://localhost:5173")
    stream = RedisStream(redis_url, "t:cors")
    with running(app.collector(settings, port=0)) as server:
        ok = _preflight(f"{server.url}/v1/b", APP)
        assert ok.status_code == 204
        assert ok.headers["Access-Control-Allow-Origin"] == APP
        assert "POST" in ok.headers["Access-Control-Allow-Methods"]
        allowed = ok.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        refused = _preflight(f"{server.url}/v1/b", "https://evil.example.net")
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers

        before = len(stream.client.xrange("t:cors"))
        # analytics.js: POST /v1/t, text/plain (no preflight), the write key in the body
        single = {"type": "track", "event": "Project Created", "userId": "u-browser"}
        sent = requests.post(
            f"{server.url}/v1/t",
            data=json.dumps({**single, "writeKey": WRITE_KEY}),
            headers={"Origin": APP, "Content-Type": "text/plain"},
        )
        assert sent.status_code == 200 and sent.headers["Access-Control-Allow-Origin"] == APP
        batch = {"writeKey": WRITE_KEY, "batch": [{**single, "writeKey": WRITE_KEY}] * 2}
        sent = requests.post(f"{server.url}/v1/b", data=json.dumps(batch), headers={"Origin": APP})
        assert sent.status_code == 200
        group = requests.post(
            f"{server.url}/v1/g", data=json.dumps({"userId": "u", "writeKey": WRITE_KEY})
        )
        assert group.status_code == 200  # accepted like Segment, quarantined with a reason
        assert server.stats.quarantined["unknown_event"] == 1
        wrong = requests.post(
            f"{server.url}/v1/t",
            data=json.dumps({**single, "writeKey": "nope"}),
            headers={"Origin": APP},
        )
        assert wrong.status_code == 401 and wrong.headers["Access-Control-Allow-Origin"] == APP
    entries = stream.client.xrange("t:cors")[before:]
    messages = [json.loads(fields[b"e"]) for _, fields in entries]
    assert [m["type"] for m in messages] == ["track", "track", "track", "group"]
    assert not any("writeKey" in m for m in messages)  # the secret never reaches the stream


def test_serve_preflight_and_headers(env, world):
    user = new_user_before_setup(world)
    with running(app.profile_server(Settings.from_env(), port=0)) as server:
        ok = _preflight(f"{server.url}/v1/profiles/{user}", APP, "GET")
        assert ok.status_code == 204 and "GET" in ok.headers["Access-Control-Allow-Methods"]
        auth = {"Authorization": f"Bearer {READ_KEY}", "Origin": APP}
        got = requests.get(f"{server.url}/v1/profiles/{user}", headers=auth)
        assert got.status_code == 200 and got.json()["known"] is True
        assert got.headers["Access-Control-Allow-Origin"] == APP and got.headers["Vary"] == "Origin"
        bulk = requests.post(
            f"{server.url}/ofrep/v1/evaluate/flags",
            json={"context": {"targetingKey": user}},
            headers=auth,
        )
        assert bulk.status_code == 200 and bulk.headers["ETag"]
        assert bulk.headers["Access-Control-Expose-Headers"] == "ETag"  # the SDK reads it
        other = requests.get(
            f"{server.url}/v1/profiles/{user}",
            headers={**auth, "Origin": "https://evil.example.net"},
        )
        assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers


def test_no_origin_is_allowed_by_default(env, world):
    env.delenv("SEGFLOW_CORS_ORIGINS")
    with running(app.profile_server(Settings.from_env(), port=0)) as server:
        refused = _preflight(f"{server.url}/v1/profiles/u", APP, "GET")
        assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
        got = requests.get(
            f"{server.url}/v1/profiles/u",
            headers={"Authorization": f"Bearer {READ_KEY}", "Origin": APP},
        )
        assert got.status_code == 200 and "Access-Control-Allow-Origin" not in got.headers
