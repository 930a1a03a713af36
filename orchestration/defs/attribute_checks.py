"""The WARN check and metadata for custom CRM attribute values that do not parse (the load of
`raw.crm_contacts` records them: orchestration/sources/attribute_values.py). The contacts load;
the check warns, naming each attribute's bad values, and never blocks the run."""

import dagster as dg

from orchestration.defs.metadata import preview, table
from orchestration.sources.attribute_values import AttributeValueReport

ATTRIBUTE_VALUES_CHECK = "custom_attribute_values"
ATTRIBUTE_TABLE = "crm_contacts"  # the raw table whose asset carries the check


def attribute_check_specs(table_name: str) -> list[dg.AssetCheckSpec]:
    if table_name != ATTRIBUTE_TABLE:
        return []
    return [
        dg.AssetCheckSpec(
            ATTRIBUTE_VALUES_CHECK,
            asset=dg.AssetKey(["raw", table_name]),
            blocking=False,
            description="Declared custom attributes parse as their type (bad values: null in "
            "the marts, listed in raw.quarantine as bad_attribute_value)",
        )
    ]


def attribute_metadata(report: AttributeValueReport) -> dict:
    return {
        "bad_attribute_values": report.bad_values,
        "attribute_values": table(report.counts or [{"attribute": "(none declared)"}]),
    }


def attribute_check(report: AttributeValueReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=ATTRIBUTE_VALUES_CHECK,
        asset_key=dg.AssetKey(["raw", ATTRIBUTE_TABLE]),
        passed=not report.bad_values,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **attribute_metadata(report),
            "bad_values_preview": preview(report.preview),
            "message": report.message(),
        },
    )
