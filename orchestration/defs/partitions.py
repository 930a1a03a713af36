"""Daily UTC partitions shared by every date-grained asset, and the one way the wiring works
out which days a run is about (`run_window`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from orchestration.settings import Settings

DUCKDB_POOL = "duckdb"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=Settings.from_env().partitions_start.isoformat(), timezone="UTC"
)

single_run = dg.BackfillPolicy.single_run()

RANGE_START, RANGE_END, PARTITION = (
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
    "dagster/partition",
)


@dataclass(frozen=True)
class RunWindow:
    """The days a run is about, both ends included (a backfill range is one run)."""

    start: date
    end: date

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def label(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start}..{self.end}"


def window_from_tags(tags: Mapping[str, str]) -> RunWindow | None:
    """The run's partition range from its tags (what a check, sensor or report sees)."""
    if RANGE_START in tags and RANGE_END in tags:
        return RunWindow(date.fromisoformat(tags[RANGE_START]), date.fromisoformat(tags[RANGE_END]))
    if PARTITION in tags:
        day = date.fromisoformat(tags[PARTITION])
        return RunWindow(day, day)
    return None


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
