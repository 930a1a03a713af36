"""Run-failure alert: a real failed Dagster run, the sensor evaluated against it, and the
Slack-compatible body received by a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from orchestration.activation.report import SyncBlockedError
from orchestration.defs.sensors import alert_body, first_line, segflow_run_failure_alert
from orchestration.report.browser import Browser, find_chromium

OUTPUT = Path(__file__).parent / "output" / "alerts"


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "path": self.path,
                    "content_type": self.headers["Content-Type"],
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/segflow", received
    server.shutdown()
    server.server_close()


@dg.asset
def raw_events_demo():
    return 1


@dg.asset_check(asset=raw_events_demo, blocking=True)
def quarantine_gate():
    return dg.AssetCheckResult(passed=False, metadata={"share": 0.4})


@dg.asset(deps=[raw_events_demo])
def scores_demo():
    return 1


@dg.asset
def destination_sync_demo():
    raise SyncBlockedError("circuit breaker: 61% of known people would change (max 50%)")


def _failed_run(instance: dg.DagsterInstance, assets, checks=()):
    job = dg.define_asset_job("segflow_daily_job", selection=dg.AssetSelection.all())
    defs = dg.Definitions(assets=assets, asset_checks=list(checks), jobs=[job])
    result = defs.resolve_job_def("segflow_daily_job").execute_in_process(
        instance=instance, raise_on_error=False, tags={"dagster/partition": "2026-03-04"}
    )
    assert not result.success
    return result


def _evaluate(instance: dg.DagsterInstance, result) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="segflow_run_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    segflow_run_failure_alert(context)


def _save(name: str, post: dict) -> Path:
    """The request as received (JSON) and, with Chromium, a screenshot of it rendered."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT.parent / ".gitignore").write_text("*\n")
    path = OUTPUT / f"{name}.json"
    path.write_text(json.dumps(post, indent=2))
    if find_chromium():
        page = OUTPUT / f"{name}.html"
        page.write_text(
            "<!doctype html><meta charset=utf-8><link rel=icon href='data:,'>"
            "<body style='font:14px system-ui;margin:24px;max-width:900px'>"
            f"<h3>POST {html.escape(post['path'])} received by the local webhook server</h3>"
            "<pre style='white-space:pre-wrap;background:#f4f5f7;padding:12px;border-left:4px solid #d62728'>"
            f"{html.escape(post['body']['text'])}</pre>"
            f"<details open><summary>JSON body</summary><pre style='white-space:pre-wrap;word-break:break-all'>{html.escape(json.dumps(post['body'], indent=2))}</pre></details>"
        )
        with Browser(height=700) as browser:
            browser.visit(page, screenshot=OUTPUT / f"{name}.png")
    return path


def test_blocking_check_failure_posts_alert(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("SEGFLOW_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("SEGFLOW_WEBSERVER_URL", "http://dagster.example:3000/")
    instance = dg.DagsterInstance.ephemeral()
    result = _failed_run(instance, [raw_events_demo, scores_demo], [quarantine_gate])
    _evaluate(instance, result)

    assert len(received) == 1
    post = received[0]
    assert post["path"] == "/hooks/segflow"
    assert post["content_type"] == "application/json"
    body = post["body"]
    assert set(body) == {"text", "blocks"}  # Slack incoming-webhook shape
    assert body["blocks"][0]["text"]["text"] == body["text"]
    text = body["text"]
    run_id = result.dagster_run.run_id
    assert "segflow_daily_job" in text
    assert f"`{run_id}`" in text
    assert "partition: 2026-03-04" in text
    assert "failed step: raw_events_demo_quarantine_gate" in text
    assert "error: DagsterAssetCheckFailedError: 1 blocking asset check failed" in text
    assert "failed blocking checks: raw_events_demo:quarantine_gate" in text
    assert f"<http://dagster.example:3000/runs/{run_id}|open the run>" in text
    print("alert received:", _save("blocking_check_alert", post))


def test_sync_breaker_is_named_in_alert(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("SEGFLOW_ALERT_WEBHOOK_URL", url)
    instance = dg.DagsterInstance.ephemeral()
    result = _failed_run(instance, [destination_sync_demo])
    _evaluate(instance, result)

    text = received[0]["body"]["text"]
    assert "failed step: destination_sync_demo" in text
    assert "SyncBlockedError: circuit breaker: 61% of known people would change" in text
    assert "sync circuit breaker: tripped, nothing was sent" in text
    assert "\n" not in text.split("error: ", 1)[1].split("\n", 1)[0].strip("\n")
    print("alert received:", _save("breaker_alert", received[0]))


def test_no_url_means_no_post(webhook, monkeypatch):
    _, received = webhook
    monkeypatch.delenv("SEGFLOW_ALERT_WEBHOOK_URL", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    _evaluate(instance, _failed_run(instance, [destination_sync_demo]))
    assert received == []


def test_body_helpers():
    assert first_line("\n\n  boom: x \n trace") == "boom: x"
    body = alert_body(job="j", run_id="r", failed_steps=[], error="", link="http://l")
    assert "failed step: (none reported)" in body["text"]
    assert "sync circuit breaker" not in body["text"]
