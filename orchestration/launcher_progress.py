"""Follows a launched run's Dagster event log and turns it into the terminal's progress lines:
one per finished step (name, elapsed time, key counts), a heartbeat for long steps, and what a
blocking check found when it stops the run. Used by orchestration/launcher.py."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TextIO

import dagster as dg
import psutil

from orchestration.defs import stale_runs
from orchestration.report.run_summary import (
    ERROR,
    PASS,
    SKIP,
    SYNC_SUMMARY_KEY,
    CheckOutcome,
    StepOutcome,
    check_message,
    error_cause,
)
from orchestration.settings import Settings

HEARTBEAT_SECONDS = 30.0
POLL_SECONDS = 1.0
STEP_CLOCK_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}
EVENT_TYPES = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
}


def _counts(metadata: dict) -> str:
    """The key counts of one materialization (or why it was skipped), for its progress line."""
    status = getattr(metadata.get("status"), "value", metadata.get("status"))
    if isinstance(status, str) and status.startswith("skipped"):
        return status[:300]
    parts = []
    for key in ("dagster/row_count", "rows_loaded", "rows_quarantined", "users_latest_day"):
        value = metadata.get(key)
        value = getattr(value, "value", value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{key.removeprefix('dagster/').replace('_', ' ')} {value:,}")
    return ", ".join(parts)


def _process_started() -> float:
    """When this process started (epoch seconds): the wall before the first step includes the
    interpreter's start and every import, which no clock inside the run sees."""
    return psutil.Process().create_time()


class Progress(threading.Thread):
    """Follows the run's event log and prints one line per finished step, a heartbeat for
    steps running longer than HEARTBEAT_SECONDS, and the blocking checks' findings."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, out: TextIO) -> None:
        super().__init__(daemon=True)
        self.instance, self.run_id, self.out = instance, run_id, out
        self.started_at = time.monotonic()
        self.running: dict[str, float] = {}
        self.counts: dict[str, dict[str, str]] = {}  # step -> asset -> counts (one per asset)
        self.blocked: list[str] = []
        self.steps: list[StepOutcome] = []
        self.checks: list[CheckOutcome] = []
        self.skip_reasons: dict[str, str] = {}  # step -> why its asset was skipped
        self.sync_summaries: list[dict] | None = None  # destination_sync, one per destination
        self.first_step_after: float | None = None
        self._halt = threading.Event()
        self._cursor: str | None = None
        self._last_line = time.monotonic()
        self.stale_check_seconds = Settings.from_env().stale_run_check_seconds
        self._last_stale_check = time.monotonic()
        # (wall, process CPU) when each step started and ended, taken in the executing thread
        # as the event is stored (exact; the poll above sees events up to a second late)
        self.clock: dict[str, dict[str, tuple[float, float]]] = {}
        instance.add_event_listener(run_id, self._on_event)

    def _on_event(self, entry) -> None:
        with contextlib.suppress(Exception):  # runs inside the run's thread: never break it
            event = entry.dagster_event
            if event is None or event.event_type not in STEP_CLOCK_EVENTS or not event.step_key:
                return
            mark = "start" if event.event_type == dg.DagsterEventType.STEP_START else "end"
            now = (time.monotonic(), time.process_time())
            self.clock.setdefault(event.step_key, {})[mark] = now

    def step_seconds(self, step: str) -> tuple[float, float] | None:
        """Wall and CPU seconds of a finished step (CPU: the whole process, every thread,
        while the step ran: the in-process executor runs one step at a time)."""
        marks = self.clock.get(step, {})
        if "start" not in marks or "end" not in marks:
            return None
        (wall0, cpu0), (wall1, cpu1) = marks["start"], marks["end"]
        return wall1 - wall0, cpu1 - cpu0

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
        self._last_line = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        self.poll()  # whatever arrived after the last poll

    def run(self) -> None:
        while not self._halt.wait(POLL_SECONDS):
            with contextlib.suppress(Exception):  # progress must never break the run
                self.poll()
                self.heartbeat()

    def heartbeat(self) -> None:
        now = time.monotonic()
        if not self.running and now - self._last_stale_check >= self.stale_check_seconds:
            self._last_stale_check = now  # waiting for the pool? a dead run may hold it
            for line in stale_runs.reap_stale_runs(self.instance, exclude=self.run_id):
                self.say(f"  {line}")
        if self.running and now - self._last_line >= HEARTBEAT_SECONDS:
            names = ", ".join(
                f"{step} ({now - since:.0f}s)" for step, since in self.running.items()
            )
            self.say(f"  ... running {names}")
        elif not self.running and now - self._last_line >= HEARTBEAT_SECONDS:
            self.say(f"  ... planning the run ({now - self.started_at:.0f}s)")

    def poll(self) -> None:
        records = self.instance.get_records_for_run(
            self.run_id, cursor=self._cursor, of_type=EVENT_TYPES
        )
        self._cursor = records.cursor
        for record in records.records:
            self.handle(record.event_log_entry)

    def handle(self, entry) -> None:
        event = entry.dagster_event
        step = event.step_key or "run"
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            self.running[step] = time.monotonic()
            if self.first_step_after is None:
                self.first_step_after = time.monotonic() - self.started_at
                _, cpu = self.clock.get(step, {}).get("start", (0.0, time.process_time()))
                self.say(
                    f"  first step started {entry.timestamp - _process_started():.1f}s after "
                    f"the command started ({cpu:.1f} CPU s), {self.first_step_after:.1f}s after "
                    "the definitions loaded"
                )
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            metadata = dict(materialization.metadata)
            status = getattr(metadata.get("status"), "value", metadata.get("status"))
            if isinstance(status, str) and status.startswith("skipped"):
                reason = status.removeprefix("skipped").lstrip(": ")
                self.skip_reasons[step] = reason[:300]
            if SYNC_SUMMARY_KEY in metadata:
                self.sync_summaries = list(metadata[SYNC_SUMMARY_KEY].value)
            counts = _counts(metadata)
            if counts:
                name = materialization.asset_key.to_user_string()
                self.counts.setdefault(step, {})[name] = f"{name}: {counts}"
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            self.blocked += blocking_lines(evaluation)
            self.checks.append(check_outcome(evaluation))
        elif kind in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.STEP_SKIPPED,
        ):
            self.finish_step(step, event, entry)

    def finish_step(self, step: str, event, entry) -> None:
        """One line per finished step: `ok`, `SKIP` with why, or `FAILED` with its own cause."""
        kind = event.event_type
        since = self.running.pop(step, None)
        clocked = self.step_seconds(step)
        if clocked is not None:
            elapsed = f"{clocked[0]:6.1f}s ({clocked[1]:5.1f} CPU s)"
        else:
            elapsed = f"{time.monotonic() - since:6.1f}s" if since else "      -"
        counts = "; ".join(list(self.counts.pop(step, {}).values())[:3])
        if kind == dg.DagsterEventType.STEP_FAILURE:
            outcome = StepOutcome(step, ERROR, self.failure_cause(step, event))
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            outcome = StepOutcome(step, SKIP, "not run: an upstream step failed or was blocked")
        elif step in self.skip_reasons:
            outcome = StepOutcome(step, SKIP, self.skip_reasons.pop(step))
        else:
            outcome = StepOutcome(step, PASS, counts)
        self.steps.append(outcome)
        mark = {PASS: "ok", SKIP: "SKIP", ERROR: "FAILED"}[outcome.status]
        self.say(f"  {mark:<7} {step:<34} {elapsed}  {outcome.detail}".rstrip())

    def mark_not_run(self, step_keys) -> None:
        """Steps Dagster abandoned (an upstream step failed or a blocking check stopped it)
        emit no event of their own: each is a SKIP with that reason."""
        finished = {s.step for s in self.steps}
        for step in step_keys:
            if step not in finished:
                outcome = StepOutcome(step, SKIP, "not run: an upstream step failed or was blocked")
                self.steps.append(outcome)
                self.say(f"  {'SKIP':<7} {step:<34}       -  {outcome.detail}")

    def failure_cause(self, step: str, event) -> str:
        """The failed blocking check's message when a check stopped the step, else the
        innermost exception (not the executor's wrapper)."""
        for check in self.checks:  # step keys spell asset key paths with "__"
            if check.status == ERROR and check.asset.replace("/", "__") == step:
                return f"{check.asset} / {check.check}: {check.message}"
        error = event.event_specific_data.error
        return error_cause(error) if error else ""


def check_outcome(evaluation) -> CheckOutcome:
    severity = ERROR if evaluation.severity == dg.AssetCheckSeverity.ERROR else "WARN"
    return CheckOutcome(
        asset=evaluation.asset_key.to_user_string(),
        check=evaluation.check_name,
        severity=severity,
        passed=bool(evaluation.passed),
        message="" if evaluation.passed else check_message(dict(evaluation.metadata)),
    )


def blocking_lines(evaluation) -> list[str]:
    """One line per blocking rule of a failed check: table, partitions, rule, expected, found,
    and where to look."""
    if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
        return []
    metadata = dict(evaluation.metadata)
    docs = metadata.get("data_docs")
    where = f"Data Docs {docs.value}" if docs is not None else "the check's page in the Dagster UI"
    asset = evaluation.asset_key.to_user_string()
    detail = metadata.get("blocking_detail")
    rows = detail.value if detail is not None else []
    if not rows:
        return [f"{asset} / {evaluation.check_name} failed; see {where}"]
    lines = []
    for row in rows:
        parts = row.get("partitions") or []
        span = f"{parts[0]} .. {parts[-1]}" if len(parts) > 1 else (parts[0] if parts else "-")
        lines.append(
            f"{row['table']} partition {span}: rule {row['rule']}: expected {row['expected']}; "
            f"found: {row['found']} (see {where})"
        )
    return lines
