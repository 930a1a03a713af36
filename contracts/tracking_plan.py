"""The tracking plan (event names -> milestones, core features, support, billing) lives in
`dbt_project/dbt_project.yml` vars so dbt and Python read one file; loaded once per file.

Column names that dbt expands from the plan (`reached_<milestone>`, the milestone counters,
the per-event `evt_<slug>_*` columns) are derived here with the same slug as dbt's `slug()`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PROJECT_FILE = Path(__file__).resolve().parents[1] / "dbt_project" / "dbt_project.yml"

_GROUPS = (
    "core_features",
    "support_events",
    "upgrade_events",
    "cancel_events",
    "other_events",
    "paid_plans",
    "plans",
)


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
    # all-time counter column -> milestone whose events it counts (vars.milestone_counters)
    milestone_counters: tuple[tuple[str, str], ...] = ()

    @property
    def milestone_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.milestones)

    @property
    def counter_columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.milestone_counters)

    @property
    def milestone_columns(self) -> tuple[str, ...]:
        """The `reached_<milestone>` flags of fct_user_features, in funnel order."""
        return tuple(f"reached_{name}" for name in self.milestone_names)

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


def event_slug(event_name: str) -> str:
    """Same slug as the dbt `slug()` macro: lower case, non-alphanumerics to underscores."""
    return re.sub(r"[^a-z0-9]+", "_", event_name.lower()).strip("_")


# Per core-feature event: counts in the last 7 and 28 days, change of the last 7 days vs the
# 7 before, and share of all events in the last 28 days (fct_user_features.sql).
EVENT_SUFFIXES = ("_7d", "_28d", "_change_7d", "_share_28d")


def event_feature_columns(event_names: Iterable[str]) -> tuple[str, ...]:
    return tuple(
        f"evt_{event_slug(name)}{suffix}" for name in event_names for suffix in EVENT_SUFFIXES
    )


@cache
def load(project_file: Path = PROJECT_FILE) -> TrackingPlan:
    """The plan in `project_file` (a dbt_project.yml); a clear error names what is wrong."""
    try:
        variables = yaml.safe_load(Path(project_file).read_text())["vars"]
        raw = variables["tracking_plan"]
        plan = TrackingPlan(
            milestones=tuple((m["name"], tuple(m["events"])) for m in raw["milestones"]),
            milestone_counters=tuple(
                (str(column), str(milestone))
                for column, milestone in (variables.get("milestone_counters") or {}).items()
            ),
            **{key: tuple(raw[key]) for key in _GROUPS},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{project_file}: vars.tracking_plan is missing or malformed ({exc!r})"
        ) from exc
    unknown = [m for _, m in plan.milestone_counters if m not in plan.milestone_names]
    if unknown:
        raise ValueError(
            f"{project_file}: vars.milestone_counters names milestones {unknown} "
            f"that vars.tracking_plan.milestones does not declare"
        )
    return plan
