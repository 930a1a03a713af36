"""Runs whose process died (out-of-memory kill, SIGKILL) while Dagster still shows them STARTED.

Dagster's run monitoring only health-checks runs whose launcher can check a worker, and the
default run launcher (what `dagster dev` uses) cannot; a run launched in-process by `segflow run`
has no launcher at all. Such a run stays STARTED and keeps its `duckdb` pool slot, so every
later run waits for the pool forever. Every run process logs its pid in an engine event
(in-process executor and run worker alike): a STARTED run whose pid no longer names a living
process that existed when the run started is stale. It is marked failed through the instance
(a RUN_FAILURE event, so the UI, alerts and sensors see it) and its pool slots are freed.

`segflow_stale_run_sensor` does this every SEGFLOW_STALE_RUN_CHECK_SECONDS where a daemon runs
(`make dev`); `segflow run` does it before it launches and while its run waits for the pool.
The pid check assumes the run ran on this machine (true of both launchers segflow uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import psutil

from orchestration.defs.partitions import DUCKDB_POOL
from orchestration.settings import Settings

# Seconds a process may have been created after its run's start time and still be that run's
# process (clock granularity); a younger process holds a recycled pid.
PID_START_SLACK_SECONDS = 2.0


@dataclass(frozen=True)
class RunProcess:
    """One STARTED run and what is known about its process."""

    run_id: str
    job_name: str
    pid: int | None
    alive: bool
    holds_pool: bool

    @property
    def stale(self) -> bool:
        return self.pid is not None and not self.alive


def run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run's process logged last (None if it never logged one)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=False, limit=50
    ).records
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data
        pid = (getattr(data, "metadata", None) or {}).get("pid")
        if pid is not None:
            return int(getattr(pid, "value", pid))
    return None


def process_alive(pid: int, run_started_at: float | None) -> bool:
    """A living (not zombie) process with this pid that existed when the run started."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # someone else's living process: not ours to judge
    return run_started_at is None or created <= run_started_at + PID_START_SLACK_SECONDS


def pool_run_ids(instance: dg.DagsterInstance, pool: str = DUCKDB_POOL) -> set[str]:
    """Runs holding a slot of the pool."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    return {slot.run_id for slot in storage.get_concurrency_info(pool).claimed_slots}


def started_runs(instance: dg.DagsterInstance, exclude: str | None = None) -> list[RunProcess]:
    """Every STARTED run (but `exclude`, the caller's own) with its process state."""
    holders = pool_run_ids(instance)
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=100
    )
    runs = []
    for record in records:
        run = record.dagster_run
        if run.run_id == exclude:
            continue
        pid = run_pid(instance, run.run_id)
        alive = pid is None or process_alive(pid, record.start_time)
        runs.append(RunProcess(run.run_id, run.job_name, pid, alive, run.run_id in holders))
    return runs


def fail_stale_run(instance: dg.DagsterInstance, stale: RunProcess) -> int:
    """Mark the run failed through the instance and free its pool slots; slots freed."""
    run = instance.get_run_by_id(stale.run_id)
    if run is None or run.status != dg.DagsterRunStatus.STARTED:
        return 0
    instance.report_run_failed(
        run,
        message=f"segflow: the run's process (pid {stale.pid}) is gone while the run was "
        "STARTED (killed, e.g. out of memory); marked failed and its pool slots freed.",
    )
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0
    held = storage.get_concurrency_info(DUCKDB_POOL).claimed_slots
    storage.free_concurrency_slots_for_run(stale.run_id)
    return sum(1 for slot in held if slot.run_id == stale.run_id)


def reap_stale_runs(instance: dg.DagsterInstance, exclude: str | None = None) -> list[str]:
    """Fail every stale run; one line per run saying what was done."""
    lines = []
    for run in started_runs(instance, exclude=exclude):
        if run.stale:
            freed = fail_stale_run(instance, run)
            pool = f", freed {freed} `{DUCKDB_POOL}` pool slot(s)" if freed else ""
            lines.append(
                f"stale run {run.run_id} ({run.job_name}, pid {run.pid} is gone) marked "
                f"failed{pool}"
            )
    return lines


def pool_blockers(instance: dg.DagsterInstance, exclude: str | None = None) -> list[str]:
    """One line per living (or unknown) run holding the pool: who, and what to do."""
    lines = []
    for run in started_runs(instance, exclude=exclude):
        if not run.holds_pool or run.stale:
            continue
        if run.pid is None:
            lines.append(
                f"run {run.run_id} ({run.job_name}) holds the `{DUCKDB_POOL}` pool and logged no "
                "process id: if it is dead, terminate it in the Dagster UI (Runs -> Terminate)"
            )
        else:
            lines.append(
                f"run {run.run_id} ({run.job_name}, pid {run.pid}, alive) holds the "
                f"`{DUCKDB_POOL}` pool: this run waits for it; stop it with `kill {run.pid}` "
                "or in the Dagster UI"
            )
    return lines


def _sensor_interval() -> int:
    return max(1, int(Settings.from_env().stale_run_check_seconds))


@dg.sensor(
    name="segflow_stale_run_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=_sensor_interval(),
    description="Marks failed the STARTED runs whose process is gone (killed, e.g. out of "
    "memory) and frees their `duckdb` pool slots, so the next run is not blocked.",
)
def segflow_stale_run_sensor(context: dg.SensorEvaluationContext):
    lines = reap_stale_runs(context.instance)
    for line in lines:
        context.log.warning(line)
    return dg.SkipReason("; ".join(lines) if lines else "no stale run")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[segflow_stale_run_sensor])
