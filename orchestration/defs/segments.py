"""Segments, onboarding flows, experiments and triggers from segments.yml / flows.yml / triggers.yml.

The files are parsed and type-checked when the code location loads, so a bad rule fails
before anything runs, naming the file, the segment and the problem.
"""

import dagster as dg

from orchestration.defs.metadata import preview, rows_on, table
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, partition_dates, single_run
from orchestration.defs.resources import WarehouseResource
from orchestration.segments.assign import assign_segments, segment_size_changes
from orchestration.segments.config import SegmentConfig, load_configured
from orchestration.segments.experiments import experiment_results
from orchestration.settings import Settings


def segment_config() -> SegmentConfig:
    return load_configured(Settings.from_env())  # custom CRM attributes may appear in rules


CONFIG = segment_config()
SIZE_CHANGE_SHARE = Settings.from_env().segment_max_change_share
MIN_EXPERIMENT_SAMPLE = Settings.from_env().experiment_min_sample


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "user_segments",
            deps=["fct_user_features", "user_scores"],
            description="One row per user per day: segment tags, primary segment, flow, "
            "experiment variant, next content block.",
        ),
        dg.AssetSpec(
            "segment_membership",
            deps=["user_segments"],
            description="SCD2 history: one row per user per segment stint.",
        ),
        dg.AssetSpec(
            "user_triggers",
            deps=["user_segments"],
            description="Behavioural trigger firings, once per occurrence.",
        ),
    ],
    group_name="segments",
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "segment_size_change",
            asset="user_segments",
            description=f"Warns when a segment's size moves more than "
            f"{SIZE_CHANGE_SHARE:.0%} day over day (SEGFLOW_SEGMENT_MAX_CHANGE_SHARE).",
        ),
    ],
)
def segment_assets(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    dates = partition_dates(context)
    with warehouse.connect() as conn:
        report = assign_segments(conn, CONFIG, dates)
        size_warnings = segment_size_changes(conn, dates[-1], SIZE_CHANGE_SHARE)
        membership_rows = conn.execute("select count(*) from main.segment_membership").fetchone()[0]
        trigger_rows = conn.execute("select count(*) from main.user_triggers").fetchone()[0]
    latest = rows_on(report.sizes, "segment_date", dates[-1])
    for warning in report.warnings:
        context.log.warning(warning)
    yield dg.MaterializeResult(
        asset_key="user_segments",
        metadata={
            "dagster/row_count": int(sum(report.users.values())),
            "users_latest_day": int(report.users[dates[-1]]),
            "segment_sizes": table(latest[["segment", "users"]]),
            "flows_and_variants": preview(
                rows_on(report.flows, "segment_date", dates[-1]), rows=50
            ),
            "segments_not_evaluated": dg.MetadataValue.json(report.not_evaluated or {}),
            "segments_partly_evaluated": dg.MetadataValue.json(report.partly_evaluated or {}),
            "preview": preview(report.preview),
            "seconds": dg.MetadataValue.json({k: round(v, 2) for k, v in report.seconds.items()}),
        },
    )
    yield dg.MaterializeResult(
        asset_key="segment_membership",
        metadata={
            "dagster/row_count": int(membership_rows),
            "stints_rebuilt": int(report.stints_rebuilt),
        },
    )
    yield dg.MaterializeResult(
        asset_key="user_triggers",
        metadata={
            "dagster/row_count": int(trigger_rows),
            "firings_this_run": preview(report.triggers, rows=50),
        },
    )
    yield dg.AssetCheckResult(
        check_name="segment_size_change",
        asset_key="user_segments",
        passed=not size_warnings,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in size_warnings) or "none"),
            "threshold": SIZE_CHANGE_SHARE,
        },
    )


@dg.asset(
    group_name="segments",
    deps=["user_segments", "fct_user_features"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "python"},
    description="Per experiment, segment and variant: completion, time to first value, retention, "
    "conversion with confidence intervals and a test against control (no verdict below the minimum sample).",
)
def fct_experiment_results(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        as_of = conn.execute("select max(segment_date) from main.user_segments").fetchone()[0]
        results = experiment_results(conn, CONFIG, as_of, min_sample=MIN_EXPERIMENT_SAMPLE)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(results),
            "as_of": str(as_of),
            "min_sample": MIN_EXPERIMENT_SAMPLE,
            "results": preview(results, rows=40),
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[segment_assets, fct_experiment_results])
