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
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

import dagster as dg

from contracts.marts import FEATURES_TABLE, SCORES_TABLE
from contracts.raw import RAW_TABLES
from expectations.gx_loading import data_docs_once, warm
from orchestration import warehouse
from orchestration.defs import stale_runs
from orchestration.instance_sqlite import fast_instance_storage, kept_event_log_connections
from orchestration.launcher_progress import Progress
from orchestration.report.run_summary import PASS, summary_lines, warehouse_lines
from orchestration.run_window import partition_tags
from orchestration.settings import Settings

__all__ = ["Progress", "build_report_now", "launch", "run_job", "summarise"]

SUMMARY_TABLES = (
    *(f"raw.{table}" for table in RAW_TABLES),
    "raw.quarantine",
    f"main.{FEATURES_TABLE}",
    "main.dim_users",
    "main.ml_churn_training",
    f"main.{SCORES_TABLE}",
    "main.user_segments",
    "main.segment_membership",
    "main.user_triggers",
    "main.fct_experiment_results",
    "main.sync_runs",
)
SYNC_STEP = "destination_sync"
REPORT_STEP = "segflow_report"


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
    from ml.registry import import_model_loader

    import_model_loader()  # before the definitions' imports (done by `segflow run` already)
    from orchestration.definitions import defs

    job = defs().resolve_job_def(job_name)
    print(
        f"  definitions loaded in {time.monotonic() - t0:.1f}s "
        f"({time.process_time():.1f} CPU s since the command started)",
        flush=True,
    )
    instance = dg.DagsterInstance.get()
    for line in stale_runs.reap_stale_runs(instance) + stale_runs.pool_blockers(instance):
        print(f"  {line}", flush=True)
    run_id = str(uuid.uuid4())
    output = contextlib.nullcontext(sys.stdout) if debug else _output_to(log_path)
    with (
        output as terminal,
        fast_instance_storage(Path(instance.root_directory)),
        kept_event_log_connections(instance.event_log_storage),
    ):
        progress = Progress(instance, run_id, terminal)
        progress.start()
        warm()  # GX for the first suite, imported beside the run's start (gx_loading.py)
        try:
            # the GX suites' Data Docs are built once, when the run ends (expectations.runner)
            with data_docs_once():
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
    print(
        f"\nrun {result.run_id} {status} in {time.monotonic() - t0:.0f}s "
        f"({time.process_time():.0f} CPU s since the command started)"
    )
    for line in summary_lines(progress.steps, progress.checks):
        print(line)
    print(f"\nwarehouse {settings.duckdb_path}")
    for name, count in summarise(settings):
        print(f"  {name:<32} {'-' if count is None else f'{count:,}'}")
    if settings.duckdb_path.exists():
        with warehouse.connect(settings.duckdb_path) as conn:
            for line in warehouse_lines(
                conn, settings.outbox_dir, progress.sync_summaries, settings
            ):
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
