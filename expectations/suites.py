"""The expectation suites, as code. Each rule is a GX expectation plus a stable check name,
a severity (`error` blocks downstream assets, `warn` flags a soft anomaly) and a sentence
saying what was expected, so a failure message can be read without opening GX.

Three frames are validated per table: `schema` (one row of declared DuckDB types),
`rows` (the partition's rows plus a few derived `dq_*` columns) and `partitions` (one row
per partition: row count against the trailing median, ids already seen on earlier days).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import great_expectations.expectations as gxe

from expectations.config import QualityConfig
from expectations.rules import (
    Rule,
    Severity,
    in_set,
    make_rule,
    non_empty,
    not_null,
    timestamp_rules,
    unique_key,
)
from expectations.tables import TYPE_FAMILIES, TableSpec

__all__ = ["Rule", "partition_rules", "row_rules", "schema_rules"]


def schema_rules(spec: TableSpec) -> list[Rule]:
    """Presence of every contract column, and each present column's declared type."""
    rules = [
        make_rule(
            spec,
            "schema",
            "columns.present",
            "error",
            None,
            f"columns {', '.join(spec.columns)}",
            gxe.ExpectTableColumnsToMatchSet,
            column_set=list(spec.columns),
            exact_match=False,
        ),
    ]
    for column, contract_type in spec.columns.items():
        accepted = TYPE_FAMILIES[contract_type]
        rules.append(
            make_rule(
                spec,
                "schema",
                f"{column}.type",
                "error",
                column,
                f"type {' or '.join(accepted)}",
                gxe.ExpectColumnValuesToBeInSet,
                column=column,
                value_set=list(accepted),
            )
        )
    return rules


def row_rules(
    spec: TableSpec,
    columns: Collection[str],
    config: QualityConfig,
    now: datetime,
) -> list[Rule]:
    """Row-level rules for the columns present (a missing column fails the schema frame)."""
    builder = {
        "raw.crm_contacts": _contacts_rules,
        "raw.events": _events_rules,
        "raw.billing_invoices": _invoices_rules,
        "main.fct_user_features": _features_rules,
    }[spec.name]
    present = set(columns)
    return [
        rule for rule in builder(spec, config, now) if all(c in present for c in _columns_of(rule))
    ]


def _columns_of(rule: Rule) -> list[str]:
    kwargs = rule.expectation.configuration.kwargs
    names = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    return names + list(kwargs.get("column_list") or [])


def _contacts_rules(spec: TableSpec, config: QualityConfig, now: datetime) -> list[Rule]:
    accepted = config.accepted
    return [
        not_null(spec, "user_id"),
        non_empty(spec, "user_id"),
        # A contact changed twice in a day appears twice (the export holds changes); the same
        # contact with the same updated_at twice is a re-delivery.
        make_rule(
            spec,
            "rows",
            "user_id.updated_at.duplicates",
            "warn",
            "user_id",
            f"at most {config.duplicate_warn_share:.1%} of rows repeating a user_id with the "
            "same updated_at (staging de-duplicates)",
            gxe.ExpectCompoundColumnsToBeUnique,
            column_list=["user_id", "updated_at"],
            mostly=1.0 - config.duplicate_warn_share,
        ),
        not_null(spec, "signup_at"),
        *timestamp_rules(spec, "signup_at", config, now, lower_window=False),
        *timestamp_rules(spec, "updated_at", config, now, lower_window=False),
        in_set(spec, "plan", accepted.plans, "warn", "plan"),
        in_set(spec, "company_size", accepted.company_sizes, "warn", "company size bucket"),
    ]


def _events_rules(spec: TableSpec, config: QualityConfig, now: datetime) -> list[Rule]:
    accepted = config.accepted
    rules = [
        not_null(spec, "message_id"),
        non_empty(spec, "message_id"),
        unique_key(spec, "message_id", config),
        make_rule(
            spec,
            "rows",
            "identity.not_null",
            "error",
            "user_id",
            "user_id or anonymous_id on every event",
            gxe.ExpectColumnValuesToNotBeNull,
            column="dq_identity",
        ),
        not_null(spec, "type"),
        in_set(spec, "type", accepted.event_types, "error", "event type"),
        not_null(spec, "timestamp"),
        *timestamp_rules(spec, "timestamp", config, now, lower_window=True),
    ]
    if accepted.event_names is not None:
        rules.append(
            in_set(
                spec,
                "event",
                accepted.event_names,
                "warn",
                "track event name in the tracking plan",
                name="event.in_tracking_plan",
                check_column="dq_track_event",
            )
        )
    for heavy in spec.heavy_columns:
        rules.append(
            make_rule(
                spec,
                "rows",
                f"{heavy}.size",
                "warn",
                heavy,
                f"{heavy} JSON at most {config.max_property_bytes:,} bytes",
                gxe.ExpectColumnValuesToBeBetween,
                column=f"{heavy}_bytes",
                max_value=config.max_property_bytes,
            )
        )
    return rules


def _invoices_rules(spec: TableSpec, config: QualityConfig, now: datetime) -> list[Rule]:
    accepted = config.accepted
    return [
        not_null(spec, "invoice_id"),
        non_empty(spec, "invoice_id"),
        unique_key(spec, "invoice_id", config),
        not_null(spec, "user_id"),
        non_empty(spec, "user_id"),
        not_null(spec, "amount"),
        make_rule(
            spec,
            "rows",
            "amount.non_negative",
            "error",
            "amount",
            "amount >= 0",
            gxe.ExpectColumnValuesToBeBetween,
            column="amount",
            min_value=0,
        ),
        make_rule(
            spec,
            "rows",
            "amount.max",
            "warn",
            "amount",
            f"amount <= {config.max_amount:,.0f}",
            gxe.ExpectColumnValuesToBeBetween,
            column="amount",
            max_value=config.max_amount,
        ),
        in_set(spec, "currency", accepted.currencies, "error", "currency"),
        in_set(spec, "status", accepted.invoice_statuses, "error", "invoice status"),
        not_null(spec, "period_start"),
        not_null(spec, "period_end"),
        make_rule(
            spec,
            "rows",
            "period.ordered",
            "error",
            "period_end",
            "period_end on or after period_start",
            gxe.ExpectColumnPairValuesAToBeGreaterThanB,
            column_A="period_end",
            column_B="period_start",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        *timestamp_rules(spec, "period_start", config, now, lower_window=False)[:1],
        # warn: an export day may carry a late payment; the loader enforces the window on
        # events only
        *timestamp_rules(spec, "paid_at", config, now, lower_window=True, window_severity="warn"),
    ]


def _features_rules(spec: TableSpec, config: QualityConfig, now: datetime) -> list[Rule]:
    accepted = config.accepted
    required = [c for c in spec.columns if c not in spec.nullable]
    rules = [not_null(spec, c) for c in required]
    rules.append(
        make_rule(
            spec,
            "rows",
            "grain.unique",
            "error",
            "user_id",
            "one row per user_id and snapshot_date",
            gxe.ExpectCompoundColumnsToBeUnique,
            column_list=["user_id", "snapshot_date"],
        )
    )

    def between(column: str, low: float | None, high: float | None, sev: Severity = "error"):
        text = (
            f"{column} in [{low}, {high}]"
            if low is not None and high is not None
            else f"{column} >= {low}"
            if low is not None
            else f"{column} <= {high}"
        )
        return make_rule(
            spec,
            "rows",
            f"{column}.range",
            sev,
            column,
            text,
            gxe.ExpectColumnValuesToBeBetween,
            column=column,
            min_value=low,
            max_value=high,
        )

    rules += [
        between("onboarding_completion", 0, 1),
        between("active_days_7d", 0, 7),
        between("active_days_28d", 0, 28),
        between("mrr", 0, None),
        between("revenue_to_date", 0, None),
        between("avg_session_minutes_28d", 0, config.max_session_minutes, "warn"),
    ]
    # every count of the contract (days, events, sessions, milestone counters, per-event
    # counts expanded from the tracking plan)
    rules += [
        between(count, 0, None)
        for count in spec.non_negative
        if count not in ("active_days_7d", "active_days_28d")
    ]
    low, high = config.features_min_mean_events_28d, config.features_max_mean_events_28d
    rules.append(
        make_rule(
            spec,
            "rows",
            "events_28d.mean",
            "warn",
            "events_28d",
            f"mean events_28d in [{low}, {high}]",
            gxe.ExpectColumnMeanToBeBetween,
            column="events_28d",
            min_value=low,
            max_value=high,
        )
    )
    rules.append(in_set(spec, "plan", accepted.plans, "warn", "plan"))
    rules.append(
        in_set(spec, "company_size", accepted.company_sizes, "warn", "company size bucket")
    )
    return rules


def partition_rules(spec: TableSpec, config: QualityConfig) -> list[Rule]:
    """Per-partition rules: volume against the trailing median, ids repeated from earlier days."""
    drop = config.row_count_drop_share
    rules = []
    if spec.volume_checked:
        # Tables that should have rows every day (events, features). Empty days are legitimate
        # (before the first signup, holidays, a quiet product): a warning; the blocking volume
        # rule compares against the table's own history. Exports of changes (CRM, invoices)
        # are often empty and get neither rule.
        rules.append(
            make_rule(
                spec,
                "partitions",
                "row_count.not_empty",
                "warn",
                "row_count",
                "at least one row per partition",
                gxe.ExpectColumnValuesToBeBetween,
                column="row_count",
                min_value=1,
            )
        )
        rules.append(
            make_rule(
                spec,
                "partitions",
                "row_count.vs_trailing_median",
                "error",
                "row_count",
                f"row count no more than {drop:.0%} below the median of the previous "
                f"{config.row_count_history_days} days of the same day type (weekday/weekend; needs "
                f"{config.row_count_min_history} such days and a median of at least "
                f"{config.row_count_min_baseline} rows)",
                gxe.ExpectColumnValuesToBeBetween,
                column="row_count_ratio",
                min_value=1.0 - drop,
            )
        )
    if spec.key_column and spec.schema == "raw" and spec.key_column != "user_id":
        share = config.duplicate_warn_share
        rules.append(
            make_rule(
                spec,
                "partitions",
                f"{spec.key_column}.duplicates_across_partitions",
                "warn",
                spec.key_column,
                f"at most {share:.1%} of a partition's rows reusing a {spec.key_column} "
                "of an earlier partition",
                gxe.ExpectColumnValuesToBeBetween,
                column="cross_partition_duplicate_share",
                max_value=share,
            )
        )
    return rules
