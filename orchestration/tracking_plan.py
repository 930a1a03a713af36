"""The tracking plan (event names -> milestones, core features, support, billing) lives in
`dbt_project/dbt_project.yml` vars so dbt and Python read one file."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from contracts.models import LabelDefinition, churn_label_description
from orchestration.settings import DBT_PROJECT_DIR, Settings


@dataclass(frozen=True)
class TrackingPlan:
    milestones: tuple[tuple[str, tuple[str, ...]], ...]
    core_features: tuple[str, ...]
    support_events: tuple[str, ...]
    upgrade_events: tuple[str, ...]
    cancel_events: tuple[str, ...]
    other_events: tuple[str, ...]
    paid_plans: tuple[str, ...]
    plans: tuple[str, ...]

    @property
    def milestone_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.milestones)

    @property
    def known_events(self) -> frozenset[str]:
        names = {e for _, events in self.milestones for e in events}
        for group in (
            self.core_features,
            self.support_events,
            self.upgrade_events,
            self.cancel_events,
            self.other_events,
        ):
            names.update(group)
        return frozenset(names)


@cache
def load(project_file: Path = DBT_PROJECT_DIR / "dbt_project.yml") -> TrackingPlan:
    try:
        raw = yaml.safe_load(project_file.read_text())["vars"]["tracking_plan"]
        return TrackingPlan(
            milestones=tuple((m["name"], tuple(m["events"])) for m in raw["milestones"]),
            **{
                key: tuple(raw[key])
                for key in (
                    "core_features",
                    "support_events",
                    "upgrade_events",
                    "cancel_events",
                    "other_events",
                    "paid_plans",
                    "plans",
                )
            },
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{project_file}: vars.tracking_plan is missing or malformed ({exc!r})"
        ) from exc


@cache
def milestone_counters(project_file: Path = DBT_PROJECT_DIR / "dbt_project.yml") -> tuple[str, ...]:
    """Output columns of the all-time milestone counters (vars.milestone_counters)."""
    raw = yaml.safe_load(project_file.read_text())["vars"].get("milestone_counters") or {}
    return tuple(raw)


def model_features(kind: str, plan: TrackingPlan | None = None) -> tuple[str, ...]:
    """The declared inputs of model `kind` for this tracking plan (ml.feature_sets): the fixed
    windowed/lifetime/account columns plus a reached_<milestone> flag per milestone, the
    milestone counters and 7/28-day counts, change and share per core feature event."""
    from ml.feature_sets import declared_features

    plan = plan or load()
    return declared_features(
        kind,
        event_types=plan.core_features,
        milestones=plan.milestone_names,
        counters=milestone_counters(),
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
        )
    if kind == "conversion":
        return LabelDefinition(
            "upgrade",
            settings.conversion_days,
            None,
            f"upgrade event, paid plan or paid invoice within "
            f"{settings.conversion_days} days; rows: users not on a paid plan",
        )
    return LabelDefinition("revenue", 90, None, "USD paid within 90 days; rows: every customer")
