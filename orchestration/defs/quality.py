"""Great Expectations suites and quarantine gates as Dagster asset checks.

Structural failures (severity `error`) block downstream assets; soft anomalies warn. Suite
results, failing expectations and a link to GX Data Docs go into the check metadata.
"""

from datetime import date

import dagster as dg

from expectations.config import QualityConfig
from expectations.gx_loading import runner
from expectations.outcome import SuiteResult
from expectations.quarantine import check_quarantine
from expectations.reconcile import check_layers
from expectations.tables import features_spec
from orchestration.defs.metadata import table
from orchestration.defs.partitions import DUCKDB_POOL, run_window
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.settings import Settings
from orchestration.sources.mappings import declared_attributes
from orchestration.sources.verdict import gate_config

SUITE_CHECK = "gx_suite"
QUARANTINE_CHECK = "quarantine_gate"
REVENUE_CHECK = "revenue_reconciles"


def quality_config(settings: Settings) -> QualityConfig:
    return gate_config(settings)  # one definition, shared with `segflow sources check`


def check_specs_for(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            SUITE_CHECK,
            asset=asset_key,
            blocking=True,
            description="GX suite: schema, keys, accepted values, ranges, volume",
        ),
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=asset_key,
            blocking=True,
            description="Quarantined share under the threshold; read = loaded + quarantined",
        ),
    ]


def check_result(
    result: SuiteResult, asset_key: dg.AssetKey, check_name: str
) -> dg.AssetCheckResult:
    failing = result.failing
    metadata = {
        "suite": result.suite,
        "partitions": f"{result.partition_dates[0]} .. {result.partition_dates[-1]}"
        if result.partition_dates
        else "none",
        "rows_validated": result.row_count,
        "expectations": len(result.outcomes),
        "failed": len(failing),
        "blocking_failures": len(result.blocking_failures),
        "warnings": len(result.warnings),
        "failing_expectations": table(
            [
                {
                    "check": o.check,
                    "severity": o.severity,
                    "unexpected": o.unexpected_count,
                    "sample": str(o.sample_unexpected[:3])[:200],
                    "message": o.message[:300],
                }
                for o in failing
            ]
            or [{"check": "all passed"}]
        ),
    }
    if result.blocking_failures:
        # What the CLI prints for a blocked run: table, partitions, rule, expected and found.
        metadata["blocking_detail"] = dg.MetadataValue.json(
            [
                {
                    "table": o.table,
                    "rule": o.check,
                    "partitions": o.partitions,
                    "expected": o.expected,
                    "found": o.message,
                }
                for o in result.blocking_failures
            ]
        )
    if result.data_docs_url:
        metadata["data_docs"] = dg.MetadataValue.url(result.data_docs_url)
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR
        if result.blocking_failures
        else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def raw_checks(
    conn, table_name: str, dates: list[date], rows_read: dict[date, int], settings: Settings
) -> list[dg.AssetCheckResult]:
    """Both gates for a freshly loaded raw table (called inside the ingest asset)."""
    key = dg.AssetKey(["raw", table_name])
    config = quality_config(settings)
    suite = runner().validate_table(
        conn, f"raw.{table_name}", dates, config, gx_dir=settings.home / "gx"
    )
    gate = check_quarantine(conn, f"raw.{table_name}", dates, config, rows_read=rows_read)
    return [check_result(suite, key, SUITE_CHECK), check_result(gate, key, QUARANTINE_CHECK)]


def run_dates(
    context: dg.AssetCheckExecutionContext, conn, column: str, table_name: str
) -> list[date]:
    """The run's partition range, else the latest day present in the table."""
    window = run_window(context)
    if window is not None:
        return window.days
    latest = conn.execute(f'select max("{column}") from main."{table_name}"').fetchone()[0]
    return [latest] if latest else []


@dg.asset_check(
    asset=dg.AssetKey("fct_user_features"),
    name=SUITE_CHECK,
    blocking=True,
    pool=DUCKDB_POOL,
    description="GX suite on point-in-time features: no nulls the models need, bounded distributions.",
)
def fct_user_features_suite(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    segflow: SegflowSettingsResource,
) -> dg.AssetCheckResult:
    settings = segflow.settings()
    with warehouse.connect() as conn:
        dates = run_dates(context, conn, "snapshot_date", "fct_user_features")
        result = runner().validate_table(
            conn,
            "fct_user_features",
            dates,
            quality_config(settings),
            gx_dir=settings.home / "gx",
            spec=features_spec(attributes=declared_attributes(settings)),
        )
    return check_result(result, dg.AssetKey("fct_user_features"), SUITE_CHECK)


@dg.asset_check(
    asset=dg.AssetKey("fct_user_features"),
    name=REVENUE_CHECK,
    blocking=True,
    pool=DUCKDB_POOL,
    description="Paid revenue per day and in total: raw invoices = staging = the features' "
    "revenue_to_date; a difference names the invoices.",
)
def fct_user_features_revenue(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        dates = run_dates(context, conn, "snapshot_date", "fct_user_features")
        result = check_layers(conn, dates)
    return check_result(result, dg.AssetKey("fct_user_features"), REVENUE_CHECK)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=[fct_user_features_suite, fct_user_features_revenue])
