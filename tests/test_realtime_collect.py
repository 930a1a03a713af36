"""`segflow collect` against a real redis-server: the real segment-analytics-python client
delivers to it; bad requests get Segment-style errors and the collector keeps serving; bad
messages are kept with the batch loader's reason."""

from __future__ import annotations

import base64
import json

import requests
import segment.analytics as segment_analytics
from support.realtime import WRITE_KEY, running_collector

from orchestration.realtime.stream import RedisStream


def _auth(key: str = WRITE_KEY) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _drain(redis_url: str, key: str) -> list[dict]:
    stream = RedisStream(redis_url, key)
    stream.ensure_group("check")
    entries = stream.read("check", "c", count=10_000, block_ms=100)
    return [json.loads(p) for _, p in entries]


def test_real_segment_client_delivers_every_call(redis_url):
    with running_collector(redis_url, "t:client") as server:
        errors = []
        client = segment_analytics.Client(
            WRITE_KEY, host=server.url, on_error=lambda e, b: errors.append(e), max_retries=1
        )
        client.identify("u1", {"email": "u1@example.org", "plan": "trial"})
        for i in range(250):
            client.track("u1", "Project Created" if i == 0 else "Dashboard Viewed", {"i": i})
        client.page("u1", "Docs", "Getting started", {"path": "/docs"})
        client.track(anonymous_id="anon-1", event="Unplanned Thing")
        client.flush()
        client.join()
        assert errors == []
    messages = _drain(redis_url, "t:client")
    assert len(messages) == 253
    assert {m["type"] for m in messages} == {"identify", "track", "page"}
    assert all(m["receivedAt"] and m["messageId"] and "writeKey" not in m for m in messages)
    bad = [m for m in messages if "_quarantine" in m]
    assert len(bad) == 1 and bad[0]["event"] == "Unplanned Thing"
    assert bad[0]["_quarantine"] == {
        "reason_code": "unknown_event",
        "reason_detail": "track event 'Unplanned Thing' is not in the tracking plan "
        "(dbt_project.yml vars.tracking_plan)",
    }
    assert server.stats.accepted == 253 and server.stats.quarantined["unknown_event"] == 1


def test_bad_requests_get_segment_errors_and_the_collector_keeps_serving(redis_url):
    good = {"userId": "u2", "event": "Report Created", "timestamp": "2026-12-05T09:00:00Z"}
    with running_collector(redis_url, "t:errors") as server, requests.Session() as http:
        url = server.url
        cases = [
            (http.post(f"{url}/v1/track", data=b"{not json", headers=_auth()), 400, "invalid JSON"),
            (http.post(f"{url}/v1/track", json=good, headers=_auth("wrong")), 401, "write key"),
            (http.post(f"{url}/v1/track", json=good), 401, "write key"),
            (
                http.post(f"{url}/v1/batch", data=b"x" * (600 * 1024), headers=_auth()),
                400,
                "limit is 500 KB",
            ),
            (
                http.post(
                    f"{url}/v1/track",
                    json={**good, "properties": {"x": "y" * 40_000}},
                    headers=_auth(),
                ),
                400,
                "limit is 32 KB",
            ),
            (http.post(f"{url}/v1/batch", json={"batch": "no"}, headers=_auth()), 400, "batch"),
            (http.post(f"{url}/v1/nope", json=good, headers=_auth()), 404, "unknown endpoint"),
        ]
        for response, status, text in cases:
            assert response.status_code == status, (status, response.text)
            body = response.json()
            assert body["success"] is False and text in body["message"]
        # still serving on the same keep-alive connection, and nothing bad was appended
        ok = http.post(f"{url}/v1/track", json=good, headers=_auth())
        assert ok.status_code == 200 and ok.json() == {"success": True}
        in_body = http.post(f"{url}/v1/track", json={**good, "writeKey": WRITE_KEY})
        assert in_body.status_code == 200
        no_user = http.post(f"{url}/v1/track", json={"event": "Report Created"}, headers=_auth())
        assert no_user.status_code == 200  # Segment answers 200; the message is quarantined
    messages = _drain(redis_url, "t:errors")
    assert len(messages) == 3
    assert messages[2]["_quarantine"]["reason_code"] == "null_key"
    assert all("writeKey" not in m for m in messages)


def test_broker_down_answers_503_not_200(redis_url, tmp_path):
    from support.realtime import running_collector as rc

    with rc("redis://127.0.0.1:1/0", "t:down") as server:
        response = requests.post(
            f"{server.url}/v1/track",
            json={"userId": "u", "event": "Report Created"},
            headers=_auth(),
            timeout=10,
        )
        assert response.status_code == 503 and response.json()["success"] is False


def test_collector_keeps_accepting_while_no_consumer_runs_and_lag_shows(redis_url):
    from orchestration.realtime.consumer import GROUP

    stream = RedisStream(redis_url, "t:backlog")
    stream.ensure_group(GROUP)
    with running_collector(redis_url, "t:backlog") as server, requests.Session() as http:
        batch = [
            {"type": "track", "userId": f"u{i}", "event": "Report Created"} for i in range(500)
        ]
        for _ in range(6):
            response = http.post(f"{server.url}/v1/batch", json={"batch": batch}, headers=_auth())
            assert response.status_code == 200
    lag = stream.lag(GROUP)
    assert (lag.undelivered, lag.pending, lag.length) == (3000, 0, 3000)
