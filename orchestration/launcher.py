"""Launch a Dagster job for a date range from the CLI, recorded in the DAGSTER_HOME instance
so it shows in the UI like any other run, then print what the warehouse now holds.

The terminal gets one line per step (name, elapsed time, key counts), a heartbeat for long
steps and, when a blocking check stops the run, what it found. Dagster's DEBUG stream, dbt's
output and library warnings go to the run's log file (and the Dagster event log), not the
terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

import dagster as dg

from orchestration import warehouse
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
    summary_lines,
    warehouse_lines,
)
from orchestration.run_window import partition_tags
from orchestration.settings import Settings

SUMMARY_TABLES = (
    "raw.crm_contacts",
    "raw.events",
    "raw.billing_invoices",
    "raw.quarantine",
    "main.fct_user_features",
    "main.dim_users",
    "main.ml_churn_training",
    "main.user_scores",
    "main.user_segments",
    "main.segment_membership",
    "main.user_triggers",
    "main.fct_experiment_results",
    "main.sync_runs",
)
SYNC_STEP = "destination_sync"
REPORT_STEP = "segflow_report"
HEARTBEAT_SECONDS = 30.0
POLL_SECONDS = 1.0
EVENT_TYPES = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
}


def run_job(
    start: date,
    end: date,
    job_name: str,
    instance: dg.DagsterInstance | None = None,
    run_id: str | None = None,
    override_breaker: bool = False,
):
    from orchestration.definitions import defs

    job = defs().resolve_job_def(job_name)
    instance = instance or dg.DagsterInstance.get()
    run_config = (
        {"ops": {SYNC_STEP: {"config": {"override_breaker": True}}}} if override_breaker else None
    )
    return job.execute_in_process(
        instance=instance,
        tags=partition_tags(start, end),
        raise_on_error=False,
        run_id=run_id,
        run_config=run_config,
    )


def summarise(settings: Settings) -> list[tuple[str, int | None]]:
    rows = []
    with warehouse.connect(settings.duckdb_path) as conn:
        for name in SUMMARY_TABLES:
            schema, table = name.split(".")
            count = (
                conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
                if warehouse.table_exists(conn, schema, table)
                else None
            )
            rows.append((name, count))
    return rows


@contextlib.contextmanager
def _output_to(log_path: Path) -> Iterator[TextIO]:
    """Send fds 1 and 2 (Python, dbt subprocesses, C libraries) to `log_path`; yield a stream
    on the real terminal for progress lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


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
                self.say(f"  first step started after {self.first_step_after:.1f}s")
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


def launch(
    start: date,
    end: date,
    job_name: str,
    settings: Settings,
    debug: bool = False,
    override_breaker: bool = False,
) -> int:
    # One ASSET_MATERIALIZATION_PLANNED event per asset (with the partition range) instead of
    # one per asset and day: a two-year range starts in seconds, not minutes. The Makefile
    # sets the same for `make dev`. (Dagster then does not mark a failed run's partitions as
    # failed; the run itself shows the failure.)
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    days = (end - start).days + 1
    log_path = settings.home / "logs" / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"
    print(f"running {job_name} for {start} .. {end} ({days} days, one run)", flush=True)
    if override_breaker:
        print("  the sync's circuit breaker is overridden for this run", flush=True)
    print(f"  full log: {log_path}", flush=True)
    t0 = time.monotonic()
    from orchestration.definitions import defs

    job = defs().resolve_job_def(job_name)
    print(f"  definitions loaded in {time.monotonic() - t0:.1f}s", flush=True)
    instance = dg.DagsterInstance.get()
    for line in stale_runs.reap_stale_runs(instance) + stale_runs.pool_blockers(instance):
        print(f"  {line}", flush=True)
    run_id = str(uuid.uuid4())
    output = contextlib.nullcontext(sys.stdout) if debug else _output_to(log_path)
    with output as terminal:
        progress = Progress(instance, run_id, terminal)
        progress.start()
        try:
            result = run_job(
                start, end, job_name, instance, run_id, override_breaker=override_breaker
            )
        finally:
            progress.stop()
        progress.mark_not_run(node.name for node in job.nodes)
        report_line = _report_after_failure(job, progress, settings, instance)
    for line in progress.blocked:
        print(f"BLOCKED {line}")
    status = "succeeded" if result.success else "FAILED"
    print(f"\nrun {result.run_id} {status} in {time.monotonic() - t0:.0f}s")
    for line in summary_lines(progress.steps, progress.checks):
        print(line)
    print(f"\nwarehouse {settings.duckdb_path}")
    for name, count in summarise(settings):
        print(f"  {name:<32} {'-' if count is None else f'{count:,}'}")
    if settings.duckdb_path.exists():
        with warehouse.connect(settings.duckdb_path) as conn:
            for line in warehouse_lines(conn, settings.outbox_dir, progress.sync_summaries):
                print(line)
    if report_line:
        print(report_line)
    print("open the Dagster UI with `make dev`, MLflow with `make mlflow`")
    if not result.success:
        print(f"the run's full log: {log_path}")
    return 0 if result.success else 1


def build_report_now(settings: Settings, out_dir: Path | None = None):
    """`segflow report`: the report from the warehouse, the Dagster instance (when
    DAGSTER_HOME exists) and MLflow, outside any run."""
    from orchestration.definitions import defs
    from orchestration.defs.report import write_report

    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home and Path(home).is_dir() else None
    check_keys = defs().resolve_asset_graph().asset_check_keys
    return write_report(settings, instance, check_keys, out_dir=out_dir)


def _report_after_failure(job, progress: Progress, settings: Settings, instance) -> str:
    """The report's path; when its step did not run (the sync was blocked or failed upstream),
    build it here, so the run still leaves a report that shows why."""
    if REPORT_STEP not in {n.name for n in job.nodes}:
        return ""
    index = settings.report_dir / "index.html"
    ran = any(s.step == REPORT_STEP and s.status == PASS for s in progress.steps)
    if ran:
        return f"report: {index}"
    try:
        from orchestration.definitions import defs
        from orchestration.defs.report import write_report

        keys = defs().resolve_asset_graph().asset_check_keys
        result = write_report(settings, instance, keys, log=lambda _: None)
    except Exception as exc:  # noqa: BLE001 - the run's outcome stands; say why there is no report
        return f"report: not built ({type(exc).__name__}: {exc})"
    return f"report: {result.index} (built after the run: its step did not run)"
