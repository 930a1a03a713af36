"""The days a run is about, and what dbt is told: one plain module (no Dagster import) that the
launcher, the sensors and the dbt wiring share.

dbt gets its settings from one pure function, `dbt_vars(settings)`, passed as `--vars` to every
dbt invocation and to the `dbt parse` that writes the manifest, so the values are the same each
day and dbt's partial parsing stays valid. The run window changes every day, so it does NOT go
through `--vars` (a change of vars makes dbt re-parse the whole project): it is written to the
one-row table `<schema>.segflow_run_window` just before dbt runs, and dbt's window macros
(`dbt_project/macros/window.sql`) read it. dbt drops the table when its run ends; a dbt run
without it (by hand, or with `--vars '{"min_date": ...}'`) builds everything or that window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from orchestration.settings import Settings

RANGE_START, RANGE_END, PARTITION = (
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
    "dagster/partition",
)
WINDOW_TABLE = "segflow_run_window"


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


def partition_tags(start: date, end: date) -> dict[str, str]:
    """One run for the whole range (every partitioned asset has a single-run backfill policy)."""
    if start == end:
        return {PARTITION: start.isoformat()}
    return {RANGE_START: start.isoformat(), RANGE_END: end.isoformat()}


def window_from_tags(tags: Mapping[str, str]) -> RunWindow | None:
    """The run's partition range from its tags (what a check, sensor or report sees)."""
    if RANGE_START in tags and RANGE_END in tags:
        return RunWindow(date.fromisoformat(tags[RANGE_START]), date.fromisoformat(tags[RANGE_END]))
    if PARTITION in tags:
        day = date.fromisoformat(tags[PARTITION])
        return RunWindow(day, day)
    return None


def dbt_vars(settings: Settings) -> dict[str, Any]:
    """Every value dbt reads from segflow's settings (dbt_project.yml holds no copy)."""
    return {
        "late_arrival_days": settings.late_arrival_days,
        "churn_definition": settings.churn_definition,
        "churn_window_days": settings.churn_inactive_days,
        "churn_horizon_days": settings.churn_horizon_days,
        "cancel_grace_days": settings.cancel_grace_days,
        "conversion_window_days": settings.conversion_days,
        "ltv_horizon_days": settings.ltv_horizon_days,
        "activity_events": list(settings.activity_events),
        "purchase_source": settings.purchase_source,
        "purchase_events": list(settings.purchase_events),
    }


def dbt_vars_arg(settings: Settings, window: RunWindow | None = None) -> list[str]:
    """`--vars` for the command line, byte-identical for identical settings. `window`: only
    for engines the run-window table cannot reach (Spark: segflow writes DuckDB), at the cost
    of a re-parse."""
    values = dict(dbt_vars(settings))
    if window is not None:
        values["min_date"] = window.start.isoformat()
        values["max_date"] = (window.end + timedelta(days=1)).isoformat()
    return ["--vars", json.dumps(values, sort_keys=True)]


def window_in_table(settings: Settings) -> bool:
    """Whether dbt reads the run window from segflow_run_window in segflow's DuckDB file."""
    return settings.dbt_target != "spark"


def window_sql(window: RunWindow, schema: str = "main") -> str:
    """The statement that stores the window dbt reads: [min_date, max_date), max exclusive."""
    return (
        f"create or replace table {schema}.{WINDOW_TABLE} as select "
        f"date '{window.start.isoformat()}' as min_date, "
        f"date '{(window.end + timedelta(days=1)).isoformat()}' as max_date"
    )
