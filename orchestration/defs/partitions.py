"""Daily UTC partitions shared by every date-grained asset, and the one way the wiring works
out which days a run is about (`run_window`)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from orchestration.run_window import RunWindow, window_from_tags
from orchestration.settings import Settings

DUCKDB_POOL = "duckdb"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=Settings.from_env().partitions_start.isoformat(), timezone="UTC"
)

single_run = dg.BackfillPolicy.single_run()


def run_window(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> RunWindow | None:
    """The days this step is about: its partition range when the asset is partitioned, else
    the run's range from its tags; None for an unpartitioned run."""
    if isinstance(context, dg.AssetExecutionContext) and context.has_partition_key_range:
        keys = context.partition_key_range
        return RunWindow(date.fromisoformat(keys.start), date.fromisoformat(keys.end))
    return window_from_tags(context.run.tags)


def partition_dates(context: dg.AssetExecutionContext) -> list[date]:
    """All days of a partitioned asset's run (one run handles a whole backfill range)."""
    window = run_window(context)
    if window is None:
        raise dg.Failure(f"{context.op_def.name}: a partitioned asset needs a partition range")
    return window.days
