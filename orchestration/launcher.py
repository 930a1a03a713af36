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
):
    from orchestration.definitions import defs

    job = defs().resolve_job_def(job_name)
    instance = instance or dg.DagsterInstance.get()
    return job.execute_in_process(
        instance=instance, tags=partition_tags(start, end), raise_on_error=False, run_id=run_id
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
            counts = _counts(dict(materialization.metadata))
            if counts:
                name = materialization.asset_key.to_user_string()
                self.counts.setdefault(step, {})[name] = f"{name}: {counts}"
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            self.blocked += blocking_lines(event.event_specific_data)
        elif kind in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.STEP_SKIPPED,
        ):
            since = self.running.pop(step, None)
            elapsed = f"{time.monotonic() - since:6.1f}s" if since else "      -"
            mark = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}
            line = f"  {mark[kind.value]:<7} {step:<34} {elapsed}"
            counts = "; ".join(list(self.counts.pop(step, {}).values())[:3])
            if kind == dg.DagsterEventType.STEP_FAILURE:
                error = event.event_specific_data.error
                counts = _first_line(error.message if error else "")
            self.say(f"{line}  {counts}".rstrip())


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


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


def launch(start: date, end: date, job_name: str, settings: Settings, debug: bool = False) -> int:
    # One ASSET_MATERIALIZATION_PLANNED event per asset (with the partition range) instead of
    # one per asset and day: a two-year range starts in seconds, not minutes. The Makefile
    # sets the same for `make dev`. (Dagster then does not mark a failed run's partitions as
    # failed; the run itself shows the failure.)
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    days = (end - start).days + 1
    log_path = settings.home / "logs" / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"
    print(f"running {job_name} for {start} .. {end} ({days} days, one run)", flush=True)
    print(f"  full log: {log_path}", flush=True)
    t0 = time.monotonic()
    from orchestration.definitions import defs

    defs().resolve_job_def(job_name)
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
            result = run_job(start, end, job_name, instance=instance, run_id=run_id)
        finally:
            progress.stop()
    for line in progress.blocked:
        print(f"BLOCKED {line}")
    status = "succeeded" if result.success else "FAILED"
    print(f"\nrun {result.run_id} {status} in {time.monotonic() - t0:.0f}s")
    print(f"warehouse {settings.duckdb_path}")
    for name, count in summarise(settings):
        print(f"  {name:<32} {'-' if count is None else f'{count:,}'}")
    print("open the Dagster UI with `make dev`, MLflow with `make mlflow`")
    if not result.success:
        print(f"the run's full log: {log_path}")
    return 0 if result.success else 1
