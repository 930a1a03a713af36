"""Declared model inputs: which `fct_user_features` columns each model may use.

Selection is explicit, never inferred from column names: a model trains on exactly the
declared columns (minus degenerate ones, which are dropped and logged), and training fails
naming the column when a declared one is missing from the training table. The
product-specific families (per-event-type counts from the tracking plan, milestone flags,
milestone counters, extra CRM attributes) are expanded from the names the caller passes, so
`ml` never reads the tracking plan itself.
"""

from __future__ import annotations

from collections.abc import Sequence

# the per-event column names dbt expands from the tracking plan (one definition, in contracts)
from contracts.tracking_plan import event_feature_columns

# Windowed behaviour (7/28 days) and engagement.
WINDOWED = (
    "active_days_7d",
    "active_days_28d",
    "events_7d",
    "events_28d",
    "sessions_7d",
    "sessions_28d",
    "avg_session_minutes_28d",
    "feature_breadth_28d",
    "feature_depth_28d",
    "support_tickets_28d",
    "events_prev_7d",
    "activity_trend",
    "is_active_28d",
)
# Lifetime: frequency, recency, monetary, tenure, the customer's own rhythm.
LIFETIME = (
    "days_since_signup",
    "tenure_bucket",
    "is_new_account",
    "days_since_last_active",
    "days_since_first_active",
    "active_days_total",
    "purchases_total",
    "days_since_first_purchase",
    "days_since_last_purchase",
    "revenue_to_date",
    "avg_order_value",
    "mean_active_gap_days",
    "recency_ratio",
    "support_tickets_total",
)
ONBOARDING = ("milestones_reached", "onboarding_completion", "days_to_first_value")
ACCOUNT = (
    "plan",
    "is_paid",
    "mrr",
    "industry",
    "company_size",
    "country",
    "role",
    "acquisition_channel",
)
MODELS = ("churn", "ltv", "conversion")


def declared_features(
    kind: str,
    *,
    event_types: Sequence[str] = (),
    milestones: Sequence[str] = (),
    counters: Sequence[str] = (),
    crm_attributes: Sequence[str] = (),
) -> tuple[str, ...]:
    """The declared input columns of model `kind`, in a stable order.

    `event_types`: tracking-plan event names with per-type columns; `milestones`: names with
    a `reached_<name>` flag; `counters`: all-time milestone counter columns; `crm_attributes`:
    extra CRM columns passed through to the features.
    """
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}: expected one of {list(MODELS)}")
    columns = [
        *WINDOWED,
        *LIFETIME,
        *ONBOARDING,
        *(f"reached_{name}" for name in milestones),
        *counters,
        *event_feature_columns(event_types),
        *ACCOUNT,
        *crm_attributes,
    ]
    if kind == "conversion":  # its rows are exactly the users not on a paid plan
        columns = [c for c in columns if c not in ("is_paid", "mrr")]
    return tuple(dict.fromkeys(columns))
