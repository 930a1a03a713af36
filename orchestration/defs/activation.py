"""Sync of segments, scores and events to the configured destination (outbox by default).

Only the latest date syncs: a run whose partition range ends before the newest segment date
is a backfill and sends nothing. Credentials stay inside the destination; metadata holds counts.
"""

from datetime import date
from pathlib import Path

import dagster as dg

from orchestration.activation.destinations import build_destination
from orchestration.activation.destinations.outbox import write_readable
from orchestration.activation.sync import SyncOptions, sync
from orchestration.defs.metadata import preview, scalar, table
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, partition_dates, single_run
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource


class SyncConfig(dg.Config):
    dry_run: bool = False
    override_breaker: bool = False


@dg.asset(
    group_name="activation",
    kinds={"customerio", "python"},
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    pool=DUCKDB_POOL,
    # realtime_snapshot first: it marks the events the realtime consumer already delivered
    deps=[
        "user_segments",
        "segment_membership",
        "user_triggers",
        "user_scores",
        "realtime_snapshot",
    ],
    description="Diff-based sync of person attributes and segment/trigger events; "
    "only the latest date sends (backfills are skipped), failures are retried next run.",
)
def destination_sync(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    warehouse: WarehouseResource,
    segflow: SegflowSettingsResource,
) -> dg.MaterializeResult:
    settings = segflow.settings()
    as_of = partition_dates(context)[-1]
    destination = build_destination(settings.destination, settings)
    with warehouse.connect() as conn:
        report = sync(
            conn,
            destination,
            as_of=as_of,
            dry_run=config.dry_run,
            override_breaker=config.override_breaker,
            options=SyncOptions.from_settings(settings),
        )
        readable = _readable_outbox(conn, report, as_of)
    context.log.info(f"sync to {settings.destination} for {as_of}: {report.status}")
    report.raise_if_blocked()
    metadata = {
        key: scalar(value)
        for key, value in report.to_metadata().items()
        if isinstance(value, (str, int, float, bool)) or value is None
    }
    metadata["failures_by_reason"] = table(
        [{"reason": k, "rows": v} for k, v in sorted(report.failures_by_reason.items())]
        or [{"reason": "none", "rows": 0}]
    )
    for key, value in readable.items():
        metadata[key] = dg.MetadataValue.path(value) if key.endswith("_csv") else value
    metadata["failed_rows"] = preview(report.failed_rows)
    metadata["sample_payloads"] = dg.MetadataValue.json(
        report.samples[:5] if report.samples else []
    )
    return dg.MaterializeResult(metadata=metadata)


def _readable_outbox(conn, report, as_of: date) -> dict:
    """people.csv / events.csv beside this sync's outbox file (outbox destination only)."""
    outbox_file = report.destination_facts.get("outbox_file")
    if not outbox_file or not Path(outbox_file).exists():
        return {}
    return write_readable(conn, outbox_file, as_of)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[destination_sync])
