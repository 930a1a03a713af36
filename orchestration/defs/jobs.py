"""Jobs and schedules: the daily pipeline, weekly model training, and the full run the CLI launches."""

import dagster as dg

from orchestration.defs.partitions import daily_partitions

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


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[full_job, daily_job, training_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(daily_job, hour_of_day=2, minute_of_hour=0),
            dg.ScheduleDefinition(
                job=training_job, cron_schedule="0 4 * * 1", execution_timezone="UTC"
            ),
        ],
    )
