"""Raw ingest: one daily-partitioned asset per raw table, loaded from the configured source.

A run handles its whole partition range (single-run backfill policy), and each day is a
delete+insert, so re-running or backfilling a day replaces it.

With the `files` source the declared mappings (`sources.yml`, see
orchestration/sources/mappings.py) are validated when this code location loads: an invalid
file fails the load with a message naming the file, the source and the key. Every landing file
is loaded or reported (per-file metadata); a skipped file fails the blocking quarantine gate
unless its source says `on_skip: ignore`.
"""

import dagster as dg

from orchestration.defs.attribute_checks import (
    ATTRIBUTE_TABLE,
    attribute_check,
    attribute_check_specs,
    attribute_metadata,
)
from orchestration.defs.metadata import preview, table
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, partition_dates, single_run
from orchestration.defs.quality import (
    QUARANTINE_CHECK,
    check_specs_for,
    quality_config,
    raw_checks,
)
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.settings import Settings
from orchestration.sources.attribute_values import record_bad_attribute_values
from orchestration.sources.compiler import DST_RULE
from orchestration.sources.load import RAW_TABLES, load_partitions
from orchestration.sources.mappings import SourcesConfig, declared_attributes, load_config
from orchestration.sources.verdict import load_failures
from orchestration.spark.raw_export import publish_raw


def source_config(settings: Settings) -> SourcesConfig | None:
    """The validated mappings of the `files` source (None for the demo source)."""
    if settings.source != "files":
        return None
    return load_config(settings.landing_dir)


_CONFIG = source_config(Settings.from_env())  # validated at code-location load


# CRM and billing records are matched to product users through identify calls (identity in
# sources.yml), so they load after raw.events of the same partitions.
IDENTITY_TABLES = ("crm_contacts", "billing_invoices")


def _gate_with_verdict(
    check: dg.AssetCheckResult, report, failures: list[str]
) -> dg.AssetCheckResult:
    """The quarantine gate also fails on the load's own verdict (orchestration/sources/verdict):
    rows quarantined with no partition, skipped landing files, one-page exports."""
    if check.check_name != QUARANTINE_CHECK or not failures:
        return check
    skipped = report.blocking_skipped
    unassigned = [
        {"file": f, "by_reason": ", ".join(f"{k}={n}" for k, n in sorted(r.items()))}
        for f, r in sorted(report.unassigned.items())
    ]
    return dg.AssetCheckResult(
        check_name=check.check_name,
        asset_key=check.asset_key,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            **(check.metadata or {}),
            "skipped_files": table(
                [{"file": s.relative, "reason": s.reason} for s in skipped[:50]]
                or [{"file": "(none)"}]
            ),
            "unassigned_rows": table(unassigned[:50] or [{"file": "(none)"}]),
            "message": "FAILED: " + " | ".join(failures),
        },
    )


PER_FILE_ROWS = 200  # metadata rows; skipped files first, then files read


def _capped(rows: list[dict]) -> list[dict]:
    rows = sorted(rows, key=lambda r: r["status"] == "loaded")
    if len(rows) <= PER_FILE_ROWS:
        return rows
    rest = rows[PER_FILE_ROWS:]
    return rows[:PER_FILE_ROWS] + [
        {
            "file": f"... {len(rest)} more files",
            "status": "",
            "rows_read": sum(r["rows_read"] for r in rest),
            "rows_loaded": sum(r["rows_loaded"] for r in rest),
            "rows_quarantined": sum(r["rows_quarantined"] for r in rest),
        }
    ]


def _raw_asset(table_name: str) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(["raw", "events"])] if table_name in IDENTITY_TABLES else []

    @dg.asset(
        key=["raw", table_name],
        group_name="ingest",
        kinds={"duckdb", "python"},
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        pool=DUCKDB_POOL,
        deps=deps,
        check_specs=check_specs_for(dg.AssetKey(["raw", table_name]))
        + attribute_check_specs(table_name),
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
        config = source_config(settings)
        with warehouse.connect() as conn:
            report = load_partitions(
                conn,
                table_name,
                dates,
                source_dir=settings.source_dir,
                source_name=settings.source,
                late_arrival_days=settings.late_arrival_days,
                config=config,
                timestamp_floor=settings.timestamp_floor,
                max_amount=settings.quality.max_amount,  # the gate's threshold, one setting
            )
            # undated rows with no usable date have no partition: counted apart
            rows_read = {
                p.partition_date: p.rows_read
                for p in report.partitions
                if p.partition_date is not None
            }
            unassigned = sum(p.rows_read for p in report.partitions if p.partition_date is None)
            checks = raw_checks(conn, table_name, dates, rows_read, settings)
            if table_name == ATTRIBUTE_TABLE:  # declared values that do not parse: counted
                attribute_values = record_bad_attribute_values(
                    conn, declared_attributes(settings), dates
                )
                checks.append(attribute_check(attribute_values))
            config = quality_config(settings)
            failures = load_failures(report, config)
            exported = publish_raw(settings, conn, table_name, dates)  # Spark engine only
        for warning in report.warnings[:50]:
            context.log.warning(warning)
        context.log.info(
            f"raw.{table_name}: read {report.rows_read}, loaded {report.rows_loaded}, "
            f"quarantined {report.rows_quarantined} over {len(dates)} day(s); "
            f"{len(report.rows_per_file)} file(s) read, {len(report.blocking_skipped)} skipped"
        )
        metadata = {
            "dagster/row_count": report.rows_loaded,
            "rows_read": report.rows_read,
            "rows_loaded": report.rows_loaded,
            "rows_quarantined": report.rows_quarantined,
            "rows_unassigned": unassigned,
            "rows_exported_to_spark": exported,
            "quarantined_by_reason": table(
                [
                    {"reason_code": k, "rows": v}
                    for k, v in sorted(report.quarantined_by_reason.items())
                ]
            ),
            "per_partition": table(report.per_partition_rows()),
            "per_file": table(_capped(report.per_file_rows()) or [{"file": "(none)"}]),
            "files_read": len(report.rows_per_file),
            "files_skipped": len(report.blocking_skipped),
            "source": settings.source,
            "source_dir": str(settings.source_dir),
            "preview": preview(report.preview),
            "quarantine_preview": preview(report.quarantine_preview),
        }
        if table_name == ATTRIBUTE_TABLE:
            metadata.update(attribute_metadata(attribute_values))
        if report.warnings:  # mappings that matched nothing, format notes, extra columns...
            metadata["warnings"] = table([{"warning": w[:300]} for w in report.warnings[:50]])
        if report.dst:  # zoneless times in a daylight-saving gap / overlap, and the rule
            metadata["daylight_saving"] = {**dict(sorted(report.dst.items())), "rule": DST_RULE}
        if report.fallbacks:  # rows whose value came from a declared `fallback:`
            metadata["fallbacks"] = dict(sorted(report.fallbacks.items()))
        if report.identity:
            metadata["identity"] = table(
                [{"matched_by": k, "rows": v} for k, v in sorted(report.identity.items())]
            )
            metadata["identity_unmatched"] = report.identity.get("unmatched", 0)
            metadata["identity_unmatched_sample"] = table(
                [
                    {"file": f, "line": line, "kept_user_id": uid}
                    for f, line, uid in report.unmatched_sample[:20]
                ]
                or [{"file": "(none)"}]
            )
        yield dg.MaterializeResult(metadata=metadata)
        for check in checks:
            yield _gate_with_verdict(check, report, failures)

    return _asset


raw_assets = [_raw_asset(name) for name in RAW_TABLES]
