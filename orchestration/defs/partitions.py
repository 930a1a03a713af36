"""Daily UTC partitions shared by every date-grained asset."""

import dagster as dg

from orchestration.settings import Settings

DUCKDB_POOL = "duckdb"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=Settings.from_env().partitions_start.isoformat(), timezone="UTC"
)

single_run = dg.BackfillPolicy.single_run()


def partition_dates(context: dg.AssetExecutionContext) -> list:
    """All days of the run's partition range (one run handles a whole backfill range)."""
    from datetime import date

    return [date.fromisoformat(key) for key in context.partition_keys]
