"""The vocabulary of the expectation suites: a `Rule` (a GX expectation plus a stable check
name, a severity and a sentence saying what was expected) and the builders the per-table suites
(expectations/suites.py) share: not null, not empty, accepted values, duplicates, timestamps."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation

from expectations.config import QualityConfig
from expectations.tables import TableSpec

Severity = Literal["error", "warn"]
Frame = Literal["schema", "rows", "partitions"]
_GX_SEVERITY = {"error": "critical", "warn": "warning"}


@dataclass(frozen=True)
class Rule:
    name: str  # stable, e.g. "events.message_id.not_null"
    severity: Severity
    frame: Frame
    expectation: Expectation
    column: str | None
    expected: str  # human sentence: what a good table has


def make_rule(
    spec: TableSpec,
    frame: Frame,
    name: str,
    severity: Severity,
    subject: str | None,
    expected: str,
    expectation_cls: type[Expectation],
    **kwargs: object,
) -> Rule:
    """`subject` is the contract column a person should look at (may differ from the GX
    column when a derived `dq_*` column is checked)."""
    check = f"{spec.short_name}.{name}"
    expectation = expectation_cls(
        **kwargs,
        severity=_GX_SEVERITY[severity],
        description=f"{check}: {expected}",
        meta={"check": check, "severity": severity},
    )
    return Rule(check, severity, frame, expectation, subject, expected)


def not_null(spec: TableSpec, column: str, severity: Severity = "error") -> Rule:
    return make_rule(
        spec,
        "rows",
        f"{column}.not_null",
        severity,
        column,
        "no nulls",
        gxe.ExpectColumnValuesToNotBeNull,
        column=column,
    )


def non_empty(spec: TableSpec, column: str) -> Rule:
    return make_rule(
        spec,
        "rows",
        f"{column}.not_empty",
        "error",
        column,
        "no empty strings",
        gxe.ExpectColumnValueLengthsToBeBetween,
        column=column,
        min_value=1,
    )


def in_set(
    spec: TableSpec,
    column: str,
    values: Collection[str],
    severity: Severity,
    what: str,
    name: str | None = None,
    check_column: str | None = None,
) -> Rule:
    shown = sorted(values)
    preview = ", ".join(shown[:12]) + (f", ... ({len(shown)} values)" if len(shown) > 12 else "")
    return make_rule(
        spec,
        "rows",
        name or f"{column}.accepted_values",
        severity,
        column,
        f"{what}: one of {preview}",
        gxe.ExpectColumnValuesToBeInSet,
        column=check_column or column,
        value_set=shown,
    )


def unique_key(spec: TableSpec, column: str, config: QualityConfig) -> Rule:
    share = config.duplicate_warn_share
    return make_rule(
        spec,
        "rows",
        f"{column}.duplicates",
        "warn",
        column,
        f"at most {share:.1%} of rows sharing a {column} (staging de-duplicates)",
        gxe.ExpectColumnValuesToBeUnique,
        column=column,
        mostly=1.0 - share,
    )


def timestamp_rules(
    spec: TableSpec,
    column: str,
    config: QualityConfig,
    now: datetime,
    lower_window: bool,
    window_severity: Severity = "error",
) -> list[Rule]:
    """Timestamps never in the future, inside the partition (+ late window), and not before
    the configured floor (SEGFLOW_TIMESTAMP_FLOOR) when one is set."""
    latest = now + timedelta(minutes=config.future_tolerance_minutes)
    rules = []
    if config.timestamp_floor is not None:
        floor = datetime.combine(config.timestamp_floor, datetime.min.time())
        rules.append(
            make_rule(
                spec,
                "rows",
                f"{column}.after_floor",
                "error",
                column,
                f"{column} on or after {config.timestamp_floor} (SEGFLOW_TIMESTAMP_FLOOR)",
                gxe.ExpectColumnValuesToBeBetween,
                column=column,
                min_value=floor,
            )
        )
    rules += [
        make_rule(
            spec,
            "rows",
            f"{column}.not_in_future",
            "error",
            column,
            f"{column} not after the validation time {latest:%Y-%m-%d %H:%M} UTC",
            gxe.ExpectColumnValuesToBeBetween,
            column=column,
            max_value=latest,
        ),
        # warn: clients with a fast clock send events "from tomorrow"; only the future blocks
        make_rule(
            spec,
            "rows",
            f"{column}.not_after_partition",
            "warn",
            column,
            f"{column} before the end of its partition day",
            gxe.ExpectColumnPairValuesAToBeGreaterThanB,
            column_A="dq_window_end",
            column_B=column,
            or_equal=False,
            ignore_row_if="either_value_is_missing",
        ),
    ]
    if lower_window:
        rules.append(
            make_rule(
                spec,
                "rows",
                f"{column}.within_late_window",
                window_severity,
                column,
                f"{column} no more than {config.late_arrival_days} day(s) before its partition day",
                gxe.ExpectColumnPairValuesAToBeGreaterThanB,
                column_A=column,
                column_B="dq_window_start",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            )
        )
    return rules
