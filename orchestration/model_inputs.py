"""What a model is trained on, from the tracking plan and the label settings: the declared
feature columns (ml.feature_sets expanded with the plan's names) and the label definition.

Lives in `orchestration` because it joins the plan (contracts), the settings and `ml`; the
tracking plan itself is `contracts.tracking_plan`, which imports nothing of the project.
"""

from __future__ import annotations

from contracts import tracking_plan
from contracts.models import LabelDefinition, churn_label_description
from contracts.tracking_plan import TrackingPlan
from orchestration.settings import Settings


def model_features(kind: str, plan: TrackingPlan | None = None) -> tuple[str, ...]:
    """The declared inputs of model `kind` for this tracking plan (ml.feature_sets): the fixed
    windowed/lifetime/account columns plus a reached_<milestone> flag per milestone, the
    milestone counters and 7/28-day counts, change and share per core feature event."""
    from ml.feature_sets import declared_features

    plan = plan or tracking_plan.load()
    return declared_features(
        kind,
        event_types=plan.core_features,
        milestones=plan.milestone_names,
        counters=plan.counter_columns,
    )


def label_definition(kind: str, settings: Settings) -> LabelDefinition:
    """The label the dbt marts built for `kind`, from the same settings dbt read."""
    if kind == "churn":
        what = churn_label_description(
            settings.churn_definition,
            settings.churn_horizon_days,
            settings.churn_inactive_days,
            settings.cancel_grace_days,
        )
        return LabelDefinition(
            settings.churn_definition,
            settings.churn_horizon_days,
            settings.churn_inactive_days,
            what,
            "SEGFLOW_CHURN_HORIZON_DAYS",
        )
    if kind == "conversion":
        return LabelDefinition(
            "upgrade",
            settings.conversion_days,
            None,
            f"upgrade event, paid plan or paid invoice within "
            f"{settings.conversion_days} days; rows: users not on a paid plan",
            "SEGFLOW_CONVERSION_DAYS",
        )
    days = settings.ltv_horizon_days
    return LabelDefinition(
        "revenue",
        days,
        None,
        f"USD paid within {days} days of the snapshot; rows: every customer",
        "SEGFLOW_LTV_HORIZON_DAYS",
    )
