"""Sync of segments, scores and events to the configured destination (outbox by default).

Only the latest date syncs: a run whose partition range ends before the newest segment date
is a backfill and sends nothing. Credentials stay inside the destination; metadata holds counts.
"""

from datetime import date
from pathlib import Path

import dagster as dg

from orchestration.activation.destinations.outbox import write_readable
from orchestration.activation.run import sync_all
from orchestration.defs.metadata import preview, scalar, table
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, partition_dates, single_run
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.report.run_summary import SYNC_SUMMARY_KEY


class SyncConfig(dg.Config):
    dry_run: bool = False
    override_breaker: bool = False


@dg.asset(
    group_name="activation",
    kinds={"customerio", "launchdarkly", "intercom"},
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
    with warehouse.connect() as conn:
        results, audit = sync_all(
            conn,
            settings,
            as_of=as_of,
            dry_run=config.dry_run,
            override_breaker=config.override_breaker,
        )
        reports = [(r, _readable_outbox(conn, r, as_of)) for r in results]
    if audit:
        context.log.info(f"privacy requests: {len(audit)} audit rows written")
    for report, _ in reports:
        context.log.info(f"sync to {report.destination} for {as_of}: {report.status}")
    for report, _ in reports:
        report.raise_if_blocked()
    metadata: dict = {
        "privacy_audit_rows": len(audit),
        # one entry per destination, read by the CLI's end-of-run summary
        SYNC_SUMMARY_KEY: dg.MetadataValue.json([r.summary() for r, _ in reports]),
    }
    for index, (report, readable) in enumerate(reports):
        # the first destination keeps the plain keys; the others are prefixed with their name
        prefix = "" if index == 0 else f"{report.destination}."
        metadata.update({prefix + k: v for k, v in _report_metadata(report, readable).items()})
    if len(reports) > 1:
        metadata["destinations"] = table(
            [
                {
                    "destination": r.destination,
                    "status": r.status,
                    "people_succeeded": r.people_succeeded,
                    "events_succeeded": r.events_succeeded,
                    "failed": r.people_failed + r.events_failed + r.items_failed_locally,
                    "attributes_truncated": r.oversize.truncated,
                    "attributes_dropped": r.oversize.dropped,
                    "people_suppressed": r.people_suppressed,
                }
                for r, _ in reports
            ]
        )
    return dg.MaterializeResult(metadata=metadata)


def _report_metadata(report, readable: dict) -> dict:
    metadata = {
        key: scalar(value)
        for key, value in report.to_metadata().items()
        if isinstance(value, (str, int, float, bool)) or value is None
    }
    metadata["failures_by_reason"] = table(
        [{"reason": k, "rows": v} for k, v in sorted(report.failures_by_reason.items())]
        or [{"reason": "none", "rows": 0}]
    )
    metadata["oversize_by_attribute"] = table(
        [{"attribute": k, "values": v} for k, v in sorted(report.oversize.by_attribute.items())]
        or [{"attribute": "none", "values": 0}]
    )
    for key, value in readable.items():
        metadata[key] = dg.MetadataValue.path(value) if key.endswith("_csv") else value
    metadata["failed_rows"] = preview(report.failed_rows)
    metadata["sample_payloads"] = dg.MetadataValue.json(
        report.samples[:5] if report.samples else []
    )
    return metadata


def _readable_outbox(conn, report, as_of: date) -> dict:
    """people.csv / events.csv beside this sync's outbox file (outbox destination only)."""
    outbox_file = report.destination_facts.get("outbox_file")
    if not outbox_file or not Path(outbox_file).exists():
        return {}
    return write_readable(conn, outbox_file, as_of)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[destination_sync])
