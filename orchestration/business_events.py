"""Which events count as activity and which as a purchase: settings read and checked against
the tracking plan (contracts.tracking_plan), then passed to dbt (run_window.dbt_vars ->
dbt_project/macros/business_events.sql).

    SEGFLOW_ACTIVITY_EVENTS   all (default) or a comma list of event names / plan groups
                              (core_features, support_events, ...) whose track calls count
    SEGFLOW_PURCHASE_SOURCE   invoices (default), events or both
    SEGFLOW_PURCHASE_EVENTS   track calls that are purchases (default: Order Completed);
                              checked only when the source includes events
"""

from __future__ import annotations

import os

from contracts import tracking_plan

PURCHASE_SOURCES = ("invoices", "events", "both")
EVENT_GROUPS = (
    "core_features",
    "support_events",
    "upgrade_events",
    "cancel_events",
    "other_events",
)


class BusinessEventError(ValueError):
    """A business-event setting names an event the tracking plan does not know."""


def _names(variable: str, default: str) -> list[str]:
    raw = os.environ.get(variable, "").strip() or default
    return [name.strip() for name in raw.split(",") if name.strip()]


def _resolve(variable: str, names: list[str], plan: tracking_plan.TrackingPlan) -> tuple[str, ...]:
    """Event names, plan groups expanded; an unknown name is an error naming the setting."""
    out: list[str] = []
    for name in names:
        if name in EVENT_GROUPS:
            out += getattr(plan, name)
        elif name in plan.known_events:
            out.append(name)
        else:
            raise BusinessEventError(
                f"{variable}: {name!r} is not an event of the tracking plan "
                f"({tracking_plan.PROJECT_FILE.name} vars.tracking_plan); known events: "
                f"{', '.join(sorted(plan.known_events))}; groups: {', '.join(EVENT_GROUPS)}"
            )
    return tuple(dict.fromkeys(out))


def activity_events(plan: tracking_plan.TrackingPlan | None = None) -> tuple[str, ...]:
    """() = every event counts as activity; otherwise the track calls that do."""
    names = _names("SEGFLOW_ACTIVITY_EVENTS", "all")
    if [n.lower() for n in names] == ["all"]:
        return ()
    return _resolve("SEGFLOW_ACTIVITY_EVENTS", names, plan or tracking_plan.load())


def purchase_source() -> str:
    value = (os.environ.get("SEGFLOW_PURCHASE_SOURCE", "").strip() or "invoices").lower()
    if value not in PURCHASE_SOURCES:
        raise BusinessEventError(
            f"SEGFLOW_PURCHASE_SOURCE={value!r}: expected one of {', '.join(PURCHASE_SOURCES)}"
        )
    return value


def purchase_events(source: str, plan: tracking_plan.TrackingPlan | None = None) -> tuple[str, ...]:
    """The track calls that are purchases; () when only invoices count."""
    if source == "invoices":
        return ()
    names = _names("SEGFLOW_PURCHASE_EVENTS", "Order Completed")
    return _resolve("SEGFLOW_PURCHASE_EVENTS", names, plan or tracking_plan.load())
