"""Sensors: a webhook alert when a run fails, and runs that start when landing files arrive.

* `segflow_run_failure_alert` posts a Slack-compatible JSON body (`text` + `blocks`) to
  `SEGFLOW_ALERT_WEBHOOK_URL` for every failed run in this code location: job, run id, failed
  step, first error line, failed blocking checks, the sync's circuit breaker, and a link to the
  run in the Dagster UI (`SEGFLOW_WEBSERVER_URL`). Without a URL it only logs.
* `segflow_landing_sensor` (only with `SEGFLOW_SOURCE=files`) watches
  `<landing>/<table>/dt=YYYY-MM-DD/` and launches one daily-job run covering every day whose
  files are new or changed since the last tick. The cursor maps each file to its size and
  mtime; a file is picked up only once it is complete: not a temporary name (`.part`, `.tmp`,
  `.crdownload`, leading `.`/`_`) and unchanged for `SEGFLOW_LANDING_SETTLE_SECONDS`.

Both sensors are RUNNING by default (they do nothing until configured: no URL, demo source);
turn them off in the UI under Automation.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import requests

from orchestration.defs.jobs import daily_job
from orchestration.run_window import partition_tags, window_from_tags
from orchestration.settings import Settings
from orchestration.sources.files import SUPPORTED_SUFFIXES
from orchestration.sources.load import RAW_TABLES

TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".filepart", ".swp")
ALERT_TIMEOUT_S = 10.0


# --- alerts -----------------------------------------------------------------------------------


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""


def root_error(error) -> str:
    """First line of the innermost cause of a serialized Dagster error (the user's exception,
    not Dagster's "Error occurred while executing op" wrapper)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = first_line(getattr(error, "message", "") or "")
    cls = getattr(error, "cls_name", None)
    if cls and f"{cls}:" in message:
        return message[message.index(f"{cls}:") :]  # drop the module path
    return f"{cls}: {message}" if cls else message


def alert_body(
    *,
    job: str,
    run_id: str,
    failed_steps: list[str],
    error: str,
    link: str,
    failed_checks: list[str] | None = None,
    breaker: str | None = None,
    partition: str | None = None,
) -> dict[str, Any]:
    """The webhook body: Slack's `text` (fallback, also what generic receivers read) + `blocks`."""
    steps = ", ".join(failed_steps) or "(none reported)"
    lines = [
        f":red_circle: segflow run failed: *{job}*",
        f"run: `{run_id}`" + (f"  partition: {partition}" if partition else ""),
        f"failed step: {steps}",
        f"error: {error or '(no error message)'}",
    ]
    if failed_checks:
        lines.append("failed blocking checks: " + ", ".join(failed_checks))
    if breaker:
        lines.append(f"sync circuit breaker: {breaker}")
    lines.append(f"<{link}|open the run>")
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def post_alert(url: str, body: dict[str, Any]) -> int:
    response = requests.post(url, json=body, timeout=ALERT_TIMEOUT_S)
    response.raise_for_status()
    return response.status_code


def _failed_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    failed = []
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data
        evaluation = getattr(data, "asset_check_evaluation", data)
        if not getattr(evaluation, "passed", True) and getattr(evaluation, "blocking", False):
            failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return failed


@dg.run_failure_sensor(
    name="segflow_run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Posts job, run id, failed step, first error line and a link to "
    "SEGFLOW_ALERT_WEBHOOK_URL (Slack-compatible JSON) when a run fails.",
)
def segflow_run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    settings = Settings.from_env()
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    steps = [event.step_key for event in step_failures if event.step_key]
    errors = [
        root_error(event.event_specific_data.error)
        for event in step_failures
        if getattr(event.event_specific_data, "error", None)
    ]
    if not errors and context.failure_event.message:
        errors = [context.failure_event.message]
    breaker = (
        "tripped, nothing was sent (re-run destination_sync with override_breaker: true "
        "once the change is understood)"
        if any("SyncBlockedError" in e for e in errors)
        else None
    )
    body = alert_body(
        job=run.job_name,
        run_id=run.run_id,
        failed_steps=steps,
        error=first_line(errors[0]) if errors else "",
        link=f"{settings.webserver_url}/runs/{run.run_id}",
        failed_checks=_failed_blocking_checks(context.instance, run.run_id),
        breaker=breaker,
        partition=window.label if (window := window_from_tags(run.tags)) else None,
    )
    if not settings.alert_webhook_url:
        context.log.info("SEGFLOW_ALERT_WEBHOOK_URL not set; alert not sent:\n" + body["text"])
        return
    status = post_alert(settings.alert_webhook_url, body)
    context.log.info(f"alert for run {run.run_id} posted (HTTP {status})")


# --- landing folder ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LandingFile:
    rel: str
    day: date
    size: int
    mtime_ns: int

    @property
    def signature(self) -> list[int]:
        return [self.size, self.mtime_ns]


def _is_candidate(path: Path) -> bool:
    name = path.name.lower()
    return (
        not name.startswith((".", "_"))
        and not name.endswith(TEMP_SUFFIXES)
        and path.suffix.lower() in SUPPORTED_SUFFIXES
    )


def scan_landing(landing: Path) -> list[LandingFile]:
    """Every dated data file under the landing folder (`<table>/dt=YYYY-MM-DD/**`)."""
    found = []
    for table in RAW_TABLES:
        root = landing / table
        if not root.is_dir():
            continue
        for day_dir in sorted(root.glob("dt=*")):
            try:
                day = date.fromisoformat(day_dir.name[3:])
            except ValueError:
                continue
            for path in sorted(p for p in day_dir.rglob("*") if p.is_file()):
                if not _is_candidate(path):
                    continue
                stat = path.stat()
                rel = path.relative_to(landing).as_posix()
                found.append(LandingFile(rel, day, stat.st_size, stat.st_mtime_ns))
    return found


def plan_landing_run(
    files: list[LandingFile], cursor: dict[str, list[int]], settle_seconds: float, now: float
) -> tuple[list[date], dict[str, list[int]], list[str]]:
    """Days to run, the new cursor, and the files held back as still being written.

    A file is ready when its mtime is at least `settle_seconds` old; only ready files enter
    the cursor, so one still being written is looked at again on the next tick."""
    new_cursor = dict(cursor)
    days: set[date] = set()
    pending = []
    for f in files:
        if cursor.get(f.rel) == f.signature:
            continue
        if now - f.mtime_ns / 1e9 < settle_seconds:
            pending.append(f.rel)
            continue
        new_cursor[f.rel] = f.signature
        days.add(f.day)
    return sorted(days), new_cursor, pending


def landing_run_request(days: list[date], changed: dict[str, list[int]]) -> dg.RunRequest:
    """One run for all affected days: a partition range (single-run backfill policy)."""
    digest = hashlib.sha1(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=f"landing-{days[0]}-{days[-1]}-{digest}",
        tags={
            **partition_tags(days[0], days[-1]),
            "segflow/trigger": "landing_files",
            "segflow/days": ",".join(d.isoformat() for d in days)[:1000],
        },
    )


@dg.sensor(
    name="segflow_landing_sensor",
    job=daily_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="With SEGFLOW_SOURCE=files: launches the daily job for the days whose landing "
    "files are new or changed (cursor: name + size + mtime), many files in one run.",
)
def segflow_landing_sensor(context: dg.SensorEvaluationContext):
    settings = Settings.from_env()
    if settings.source != "files":
        return dg.SkipReason(f"SEGFLOW_SOURCE={settings.source}: nothing to watch")
    landing = settings.landing_dir
    if not landing.is_dir():
        return dg.SkipReason(f"landing folder {landing} does not exist")
    cursor = json.loads(context.cursor) if context.cursor else {}
    days, new_cursor, pending = plan_landing_run(
        scan_landing(landing), cursor, settings.landing_settle_seconds, time.time()
    )
    if pending:
        context.log.info(f"{len(pending)} file(s) still being written: {pending[:10]}")
    if not days:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"no new complete files ({len(pending)} still being written)"
            ),
            cursor=json.dumps(new_cursor, sort_keys=True),
        )
    changed = {k: v for k, v in new_cursor.items() if cursor.get(k) != v}
    context.log.info(f"{len(changed)} new/changed file(s) -> days {days[0]}..{days[-1]}")
    return dg.SensorResult(
        run_requests=[landing_run_request(days, changed)],
        cursor=json.dumps(new_cursor, sort_keys=True),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[segflow_run_failure_alert, segflow_landing_sensor])
