"""Jobs and schedules: the daily pipeline, weekly model training, and the full run the CLI launches.

Schedules are STOPPED by default (Dagster's default: a fresh `make dev` should not start
writing to the warehouse by itself). Start them in the UI (Automation -> toggle), or set
`SEGFLOW_SCHEDULES_RUNNING=1` before `dagster dev` to have both start RUNNING. A toggle made
in the UI is stored in the instance and wins over this default.
"""

import dagster as dg

from orchestration.defs.partitions import daily_partitions
from orchestration.settings import Settings

TRAINING_GROUP = "ml_training"

full_job = dg.define_asset_job(
    "segflow_full_job",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Everything, including model training: what `segflow run` launches.",
)

daily_job = dg.define_asset_job(
    "segflow_daily_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups(TRAINING_GROUP),
    partitions_def=daily_partitions,
    description="Ingest -> dbt -> scores (current champions) -> segments -> sync, for one day.",
)

training_job = dg.define_asset_job(
    "segflow_training_job",
    selection=dg.AssetSelection.groups(TRAINING_GROUP),
    description="Retrain churn, LTV and conversion models; promotion to champion is gated.",
)


def schedule_default_status() -> dg.DefaultScheduleStatus:
    running = Settings.from_env().schedules_running
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


@dg.definitions
def defs() -> dg.Definitions:
    status = schedule_default_status()
    return dg.Definitions(
        jobs=[full_job, daily_job, training_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                daily_job,
                hour_of_day=2,
                minute_of_hour=0,
                default_status=status,
                description="Daily at 02:00 UTC for yesterday's partition (then the report).",
            ),
            dg.ScheduleDefinition(
                job=training_job,
                cron_schedule="0 4 * * 1",
                execution_timezone="UTC",
                default_status=status,
                description="Mondays 04:00 UTC: retrain; promotion to champion is gated.",
            ),
        ],
    )
