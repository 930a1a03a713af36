"""Shapes of the public marts: `fct_user_features` (expanded from the tracking plan) and
`user_scores`, so the GX suite, the segment schema, the docs test and the synthetic test
marts read one column list instead of keeping their own.

Types use the contract vocabulary of docs/contracts.md: VARCHAR, DATE, INT, DOUBLE, BOOLEAN
(dbt may widen INT to BIGINT; the suites accept a type family per contract type).
The order is the order of `fct_user_features.sql`'s final select.
"""

from __future__ import annotations

from contracts import tracking_plan
from contracts.attributes import CustomAttribute
from contracts.attributes import feature_columns as attribute_columns
from contracts.models import KINDS
from contracts.tracking_plan import EVENT_SUFFIXES, TrackingPlan, event_slug

FEATURES_TABLE = "fct_user_features"
SCORES_TABLE = "user_scores"
FEATURES_GRAIN = ("user_id", "snapshot_date")
SCORES_GRAIN = ("user_id", "score_date")

# CRM attributes copied onto every snapshot; null when the CRM has no value.
FEATURE_CATEGORICALS = (
    "plan",
    "industry",
    "company_size",
    "country",
    "role",
    "acquisition_channel",
)

_HEAD: dict[str, str] = {
    "user_id": "VARCHAR",
    "snapshot_date": "DATE",
    "signup_date": "DATE",
    "days_since_signup": "INT",
    "days_since_last_active": "INT",
    "days_since_first_active": "INT",
    "active_days_total": "INT",
    "mean_active_gap_days": "DOUBLE",
    "recency_ratio": "DOUBLE",
    "purchases_total": "INT",
    "days_since_first_purchase": "INT",
    "days_since_last_purchase": "INT",
    "avg_order_value": "DOUBLE",
    "tenure_bucket": "VARCHAR",
    "is_new_account": "BOOLEAN",
    "active_days_7d": "INT",
    "active_days_28d": "INT",
    "events_7d": "INT",
    "events_28d": "INT",
    "sessions_7d": "INT",
    "sessions_28d": "INT",
    "avg_session_minutes_28d": "DOUBLE",
    "feature_breadth_28d": "INT",
    "feature_depth_28d": "INT",
    "milestones_reached": "INT",
    "onboarding_completion": "DOUBLE",
}
_TAIL: dict[str, str] = {
    "events_prev_7d": "INT",
    "activity_trend": "DOUBLE",
    "plan": "VARCHAR",
    "is_paid": "BOOLEAN",
    "mrr": "DOUBLE",
    "revenue_to_date": "DOUBLE",
    "industry": "VARCHAR",
    "company_size": "VARCHAR",
    "country": "VARCHAR",
    "role": "VARCHAR",
    "acquisition_channel": "VARCHAR",
    "is_active_28d": "BOOLEAN",
    "is_inactive": "BOOLEAN",
    "is_cancelled": "BOOLEAN",
    "is_churned": "BOOLEAN",
}
# Type of each per-event column, by suffix (tracking_plan.EVENT_SUFFIXES).
_EVENT_TYPES = dict(zip(EVENT_SUFFIXES, ("INT", "INT", "INT", "DOUBLE"), strict=True))

# Null by definition: no activity / purchase / first value yet, or no CRM value.
FEATURE_NULLABLE = frozenset(
    {
        "days_since_first_active",
        "mean_active_gap_days",
        "recency_ratio",
        "days_since_first_purchase",
        "days_since_last_purchase",
        "days_to_first_value",
        *FEATURE_CATEGORICALS,
    }
)


def feature_columns(
    plan: TrackingPlan | None = None, attributes: tuple[CustomAttribute, ...] = ()
) -> dict[str, str]:
    """`fct_user_features` column -> contract type for `plan` (default: the project's) and the
    custom CRM attributes sources.yml declares (their columns come last, nullable)."""
    plan = plan or tracking_plan.load()
    per_event = {
        f"evt_{event_slug(event)}{suffix}": kind
        for event in plan.core_features
        for suffix, kind in _EVENT_TYPES.items()
    }
    return {
        **_HEAD,
        **dict.fromkeys(plan.milestone_columns, "BOOLEAN"),
        "days_to_first_value": "INT",
        **dict.fromkeys(plan.counter_columns, "INT"),
        "support_tickets_28d": "INT",
        "support_tickets_total": "INT",
        **per_event,
        **_TAIL,
        **attribute_columns(attributes),
    }


def count_columns(plan: TrackingPlan | None = None) -> tuple[str, ...]:
    """INT columns that count something and so are never negative (not the 7-day changes)."""
    return tuple(
        column
        for column, kind in feature_columns(plan).items()
        if kind == "INT" and not column.endswith("_change_7d")
    )


# user_scores (grain user_id x score_date): one row per scored user per day; the per-kind
# columns come from the model kinds (contracts/models.py).
SCORE_COLUMNS: dict[str, str] = {
    "user_id": "VARCHAR",
    "score_date": "DATE",
    **{
        column: kind
        for spec in KINDS.values()
        for column, kind in ((spec.score_column, "DOUBLE"), (spec.band_column, "VARCHAR"))
        if column
    },
    **{spec.reasons_column: "VARCHAR" for spec in KINDS.values() if spec.reasons_column},
    **{spec.model_version_column: "VARCHAR" for spec in KINDS.values()},
    "is_churned": "BOOLEAN",  # the features' churn state at score time (owned by the features)
}
# Contract type -> the DuckDB type a table is created with.
SQL_TYPES = {
    "VARCHAR": "VARCHAR",
    "DATE": "DATE",
    "INT": "INTEGER",
    "DOUBLE": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
}


def ddl(table: str, columns: dict[str, str], create: str = "create table if not exists") -> str:
    """`create table` for `columns` (contract types), e.g. ddl('main.user_scores', SCORE_COLUMNS)."""
    body = ", ".join(f'"{name}" {SQL_TYPES[kind]}' for name, kind in columns.items())
    return f"{create} {table} ({body})"


USER_SCORES_DDL = ddl(f"main.{SCORES_TABLE}", SCORE_COLUMNS)
