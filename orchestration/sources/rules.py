"""The row rules of the raw loader, as SQL conditions in priority order (the first that holds
is the row's reason, with the reason codes of docs/contracts.md): reader problems, shape and
keys, required fields and types, plausible times, accepted values and invoice rules, then the
time windows. `typed_query.typed_sql` evaluates them as one CASE per row; `params` supplies
the named parameters a compiled query uses."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from contracts import tracking_plan
from contracts.raw import (
    EVENT_TYPES,
    FUTURE_TOLERANCE_MINUTES,
    MAX_AMOUNT,
    MAX_FIELD_BYTES,
    PLAUSIBLE_YEARS,
    RAW,
    REVENUE_STATUSES,
)
from orchestration.sources.compiler import (
    sql_list,
)
from orchestration.sources.tables import TableSpec

FUTURE_TOLERANCE = timedelta(minutes=FUTURE_TOLERANCE_MINUTES)
_KIND_TEXT = {"ts": "a timestamp (ISO 8601)", "num": "a number", "json": "a JSON object"}
Check = tuple[str, str, str]  # (condition, reason code, detail) as SQL expressions


def _shape_checks(spec: TableSpec, direct: list[str] | None) -> list[Check]:
    """Reader problems, malformed lines, oversized values, missing keys."""
    checks: list[Check] = []
    checks.append(("pre_reason is not null", "pre_reason", "pre_detail"))
    checks.append(
        (
            # ltrim copies the line: only for the rare line that does not start with `{`
            "false"
            if direct is not None
            else "v is null or not (starts_with(payload, '{') or starts_with(ltrim(payload), '{'))",
            "'malformed_json'",
            "null"
            if direct is not None
            else "case when json_valid(payload) then 'line is JSON ' || json_type(payload) || "
            "', expected an object' else 'line is not valid JSON (truncated or malformed)' end",
        )
    )
    # a column can only be too large when the whole payload is: one cheap test for most rows
    sizes = {col: f'strlen("raw_{col}"::varchar)' for col in spec.column_names}
    checks.append(
        (
            ("" if direct is not None else f"strlen(payload) > {MAX_FIELD_BYTES} and ")
            + f"greatest({', '.join(sizes.values())}) > {MAX_FIELD_BYTES}",
            "'value_too_large'",
            "case "
            + " ".join(
                f"when {size} > {MAX_FIELD_BYTES} then format('column {col} "
                f"is {{}} bytes; limit is {MAX_FIELD_BYTES}', {size})"
                for col, size in sizes.items()
            )
            + " end",
        )
    )
    for key in spec.keys:
        checks.append(
            (
                f'"{key}" is null',
                "'null_key'",
                f"'{key} is missing or empty (it is a key of {spec.name})'",
            )
        )
    if spec.name == "events":
        checks.append(
            (
                '"user_id" is null and "anonymous_id" is null',
                "'null_key'",
                "'both user_id and anonymous_id are missing or empty'",
            )
        )
    return checks


def _type_checks(spec: TableSpec) -> list[Check]:
    """Required fields, types, plausible times."""
    checks: list[Check] = []
    for col in spec.required:
        if col not in spec.keys:
            checks.append(
                (
                    f'"raw_{col}" is null',
                    "'missing_required_column'",
                    f"'field {col} is missing or empty (required: {', '.join(spec.required)})'",
                )
            )
    for col, kind in spec.columns:
        if kind in _KIND_TEXT:
            checks.append(
                (
                    f'"raw_{col}" is not null and "{col}" is null',
                    "'wrong_type'",
                    f"format('column {col}: expected {_KIND_TEXT[kind]}, found {{}}', "
                    f'left("raw_{col}"::varchar, 100))',
                )
            )
    for col, kind in spec.columns:
        if kind == "ts":
            checks.append(_implausible_check(col))
    return checks


def _value_checks(spec: TableSpec) -> list[Check]:
    """Event types and names, accepted values, invoice rules."""
    checks: list[Check] = []
    if spec.name == "events":
        checks.append(
            (
                'not list_contains($event_types, "type")',
                "'unknown_event'",
                "format('type {} is not one of track, identify, page', \"type\")",
            )
        )
        checks.append(
            (
                '"type" = \'track\' and ("event" is null or not list_contains($known_events, "event"))',
                "'unknown_event'",
                "format('track event {} is not in the tracking plan "
                "(dbt_project.yml vars.tracking_plan)', coalesce('''' || \"event\" || '''', 'null'))",
            )
        )
    for col, allowed in _accepted_values(spec).items():
        listed = "[" + ", ".join(f"'{v}'" for v in allowed) + "]"
        checks.append(
            (
                f'"{col}" is not null and not list_contains({listed}, "{col}")',
                "'invalid_value'",
                f"format('{col} {{}} is not one of {', '.join(allowed)}', \"{col}\")",
            )
        )
    if spec.name == "billing_invoices":
        checks.append(
            (
                '"period_end" < "period_start"',
                "'invalid_value'",
                'format(\'period_end {} is before period_start {}\', "period_end", "period_start")',
            )
        )
        checks.append(
            ('"amount" < 0', "'negative_amount'", "format('amount {} is negative', \"amount\")")
        )
        checks.append(
            (
                'not ("amount" <= $max_amount::double)',
                "'amount_out_of_range'",
                "format('amount {} is above {} (SEGFLOW_DQ_MAX_AMOUNT)', \"amount\", "
                "$max_amount::double)",
            )
        )
        checks.append(
            (
                f'list_contains({sql_list(REVENUE_STATUSES)}, "status") and "paid_at" is null',
                "'missing_paid_date'",
                "format('invoice {} is {} but has no paid date, so its revenue would be "
                "lost: map paid_at, or declare `fallback:` under columns.paid_at (e.g. the "
                'created or period start date)\', "invoice_id", "status")',
            )
        )
    return checks


def _time_checks(spec: TableSpec) -> list[Check]:
    """Too old (SEGFLOW_TIMESTAMP_FLOOR), in the future, outside the late-arrival window."""
    checks: list[Check] = []
    for col, kind in spec.columns:
        if kind == "ts":
            checks.append(
                (
                    f'$floor::timestamp is not null and "{col}" < $floor::timestamp',
                    "'timestamp_too_old'",
                    f"format('{col} {{}} is before SEGFLOW_TIMESTAMP_FLOOR {{}}', \"{col}\", "
                    "$floor::date)",
                )
            )
    for col in spec.future_checked:
        checks.append(
            (
                f'"{col}" > $now::timestamp + INTERVAL {int(FUTURE_TOLERANCE.total_seconds())} SECOND',
                "'timestamp_in_future'",
                f"format('{col} {{}} is in the future (now {{}})', \"{col}\", $now::timestamp)",
            )
        )
    if spec.name == "events":
        checks.append(
            (
                "partition_date is not null and "
                '"timestamp"::date < partition_date - $late_days::integer',
                "'outside_late_window'",
                "format('timestamp {} is more than {} days before partition {}', "
                '"timestamp", $late_days, partition_date)',
            )
        )
    return checks


def row_checks(spec: TableSpec, direct: list[str] | None = None) -> list[Check]:
    """Every row rule in priority order (the first that holds is the row's reason)."""
    return [
        *_shape_checks(spec, direct),
        *_type_checks(spec),
        *_value_checks(spec),
        *_time_checks(spec),
    ]


def first_rule(checks: list[Check]) -> tuple[str, str, str]:
    """The CASE expressions: the number of the first rule that holds (evaluated once), and
    its code and detail."""
    rule = "case " + " ".join(f"when {c} then {i}" for i, (c, _, _) in enumerate(checks)) + " end"
    code = (
        "case when rule is not null then case rule "
        + " ".join(f"when {i} then {k}" for i, (_, k, _) in enumerate(checks))
        + " end end"
    )
    detail = (
        "case when rule is not null then case rule "
        + " ".join(f"when {i} then {d}" for i, (_, _, d) in enumerate(checks))
        + " end end"
    )
    return rule, code, detail


YEARS = PLAUSIBLE_YEARS


def plausible(col: str) -> str:
    """`year(col) between YEARS` as a range test (no calendar arithmetic per row); null for an
    infinite timestamp, as `year()` gives."""
    c = f'"{col}"'
    return (
        f"(case when isfinite({c}) then {c} >= timestamp '{YEARS[0]}-01-01' "
        f"and {c} < timestamp '{YEARS[1] + 1}-01-01' end)"
    )


def _implausible_check(col: str) -> tuple[str, str, str]:
    """A timestamp whose year is outside YEARS, with the epoch unit its digits suggest."""
    r = f'"raw_{col}"'
    digits = f"length(regexp_extract({r}, '^-?(\\d+)', 1))"
    unit = (
        f"case when not regexp_full_match({r}, '-?\\d+(\\.\\d*)?') then "
        "'check the column''s `format:`' "
        f"when {digits} >= 18 then 'the number looks like epoch nanoseconds: divide by 1000 "
        "and use format: epoch_us' "
        f"when {digits} >= 15 then 'the number looks like epoch microseconds: set format: "
        "epoch_us' "
        f"when {digits} >= 12 then 'the number looks like epoch milliseconds: set format: "
        "epoch_ms' "
        "else 'the number looks like epoch seconds: set format: epoch_s' end"
    )
    return (
        f'"{col}" is not null and not ({plausible(col)})',
        "'implausible_timestamp'",
        f"format('{col} {{}} reads as year {{}}, outside {YEARS[0]}-{YEARS[1]}: {{}}', "
        f'left({r}, 40), year("{col}"), {unit})',
    )


def _accepted_values(spec: TableSpec) -> dict[str, tuple[str, ...]]:
    """Accepted values a raw row must have (contracts/raw.py; null is allowed here, required
    columns are checked separately). Plans come from the tracking plan."""
    return RAW[spec.name].accepted_values


def params(
    sql: str,
    now: datetime,
    late_days: int,
    floor: date | None = None,
    max_amount: float | None = None,
) -> dict:
    """The named parameters `sql` uses (DuckDB rejects unused ones)."""
    values = {
        "now": lambda: now,
        "late_days": lambda: late_days,
        "floor": lambda: floor,
        "max_amount": lambda: MAX_AMOUNT if max_amount is None else max_amount,
        "known_events": lambda: sorted(tracking_plan.load().known_events),  # read when used
        "event_types": lambda: list(EVENT_TYPES),
    }
    return {k: v() for k, v in values.items() if f"${k}" in sql}
