"""Raw ingest: one daily-partitioned asset per raw table, loaded from the configured source.

A run handles its whole partition range (single-run backfill policy), and each day is a
delete+insert, so re-running or backfilling a day replaces it.
"""

import dagster as dg

from orchestration.defs.metadata import preview, table
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, partition_dates, single_run
from orchestration.defs.quality import check_specs_for, raw_checks
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.sources.load import RAW_TABLES, load_partitions


def _raw_asset(table_name: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", table_name],
        group_name="ingest",
        kinds={"duckdb", "python"},
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        pool=DUCKDB_POOL,
        check_specs=check_specs_for(dg.AssetKey(["raw", table_name])),
        description=f"`raw.{table_name}` loaded from the configured source (demo or files); "
        "bad rows go to `raw.quarantine` with a reason code.",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        segflow: SegflowSettingsResource,
    ):
        settings = segflow.settings()
        dates = partition_dates(context)
        with warehouse.connect() as conn:
            report = load_partitions(
                conn,
                table_name,
                dates,
                source_dir=settings.source_dir,
                source_name=settings.source,
                late_arrival_days=settings.late_arrival_days,
            )
            rows_read = {p.partition_date: p.rows_read for p in report.partitions}
            checks = raw_checks(conn, table_name, dates, rows_read, settings)
        context.log.info(
            f"raw.{table_name}: read {report.rows_read}, loaded {report.rows_loaded}, "
            f"quarantined {report.rows_quarantined} over {len(dates)} day(s)"
        )
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows_loaded,
                "rows_read": report.rows_read,
                "rows_loaded": report.rows_loaded,
                "rows_quarantined": report.rows_quarantined,
                "quarantined_by_reason": table(
                    [
                        {"reason_code": k, "rows": v}
                        for k, v in sorted(report.quarantined_by_reason.items())
                    ]
                ),
                "per_partition": table(report.per_partition_rows()),
                "source": settings.source,
                "source_dir": str(settings.source_dir),
                "files_read": len(report.files),
                "preview": preview(report.preview),
                "quarantine_preview": preview(report.quarantine_preview),
            }
        )
        yield from checks

    return _asset


raw_assets = [_raw_asset(name) for name in RAW_TABLES]
