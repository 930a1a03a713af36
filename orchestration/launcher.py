"""Launch a Dagster job for a date range from the CLI, recorded in the DAGSTER_HOME instance
so it shows in the UI like any other run, then print what the warehouse now holds."""

from __future__ import annotations

from datetime import date

import dagster as dg

from orchestration import warehouse
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


def partition_tags(start: date, end: date) -> dict[str, str]:
    """One run for the whole range (every partitioned asset has a single-run backfill policy)."""
    if start == end:
        return {"dagster/partition": start.isoformat()}
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


def run_job(start: date, end: date, job_name: str, instance: dg.DagsterInstance | None = None):
    from orchestration.definitions import defs

    job = defs().resolve_job_def(job_name)
    instance = instance or dg.DagsterInstance.get()
    return job.execute_in_process(
        instance=instance, tags=partition_tags(start, end), raise_on_error=False
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


def launch(start: date, end: date, job_name: str, settings: Settings) -> int:
    print(f"running {job_name} for {start} .. {end} (one run)")
    result = run_job(start, end, job_name)
    failed = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    for event in failed:
        print(
            f"FAILED step {event.step_key}: {event.event_specific_data.error.message.strip()[:2000]}"
        )
    print(
        f"\nrun {result.run_id} {'succeeded' if result.success else 'FAILED'}; warehouse {settings.duckdb_path}"
    )
    for name, count in summarise(settings):
        print(f"  {name:<32} {'-' if count is None else f'{count:,}'}")
    print(
        f"open the UI with `make dev`; MLflow: mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}"
    )
    return 0 if result.success else 1
