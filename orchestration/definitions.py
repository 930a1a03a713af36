"""The segflow code location: every module under `defs/`, run in-process.

The in-process executor keeps each run to one process, and the `duckdb` pool (limit 1,
set in DAGSTER_HOME/dagster.yaml) keeps two runs from writing the warehouse at once.

Ownership, kinds and tags are applied here, per group, so every asset carries them whichever
module defines it; freshness policies (`SEGFLOW_FRESHNESS_MAX_AGE_HOURS`) guard the raw
tables, the scores and the sync.
"""

import warnings
from datetime import timedelta
from pathlib import Path

import dagster as dg

from contracts.raw import RAW_TABLES
from orchestration.settings import Settings

# Dagster has no group objects: each group's description lives here, is attached to every
# asset of the group as `group_description` metadata, and is listed in the README.
GROUPS: dict[str, dict[str, object]] = {
    "ingest": {
        "description": "Raw tables loaded day by day from the source (demo or landing files); "
        "bad rows go to raw.quarantine. Blocking checks stop the run on bad data.",
        "owner": "team:data-platform",
        "kinds": {"duckdb"},
        "layer": "raw",
    },
    "dbt_staging": {
        "description": "dbt staging models: typed, renamed, deduplicated raw data.",
        "owner": "team:analytics-engineering",
        "kinds": {"dbt", "duckdb"},
        "layer": "staging",
    },
    "dbt_intermediate": {
        "description": "dbt intermediate models: identity stitching, sessions, daily activity.",
        "owner": "team:analytics-engineering",
        "kinds": {"dbt", "duckdb"},
        "layer": "intermediate",
    },
    "dbt_marts": {
        "description": "dbt marts: user features, funnel, cohort and revenue retention, segment "
        "KPIs and the ML training sets.",
        "owner": "team:analytics-engineering",
        "kinds": {"dbt", "duckdb"},
        "layer": "marts",
    },
    "ml_training": {
        "description": "Weekly model training (churn, LTV, conversion) logged to MLflow; a "
        "challenger becomes champion only if it beats the current one.",
        "owner": "team:data-science",
        "kinds": {"mlflow"},
        "layer": "ml",
    },
    "scoring": {
        "description": "Daily scores, bands and reason codes from the champion models.",
        "owner": "team:data-science",
        "kinds": {"mlflow"},
        "layer": "ml",
    },
    "segments": {
        "description": "Segments, onboarding flows, experiment arms and behavioural triggers, "
        "plus experiment results.",
        "owner": "team:growth",
        "kinds": {"duckdb", "python"},
        "layer": "activation",
    },
    "activation": {
        "description": "Diff-based sync of people and events to the destination (outbox, CSV "
        "or Customer.io), with a circuit breaker.",
        "owner": "team:growth",
        "kinds": {"python"},
        "layer": "activation",
    },
    "monitoring": {
        "description": "The static offline HTML report people look at after each daily run.",
        "owner": "team:data-platform",
        "kinds": {"html"},
        "layer": "reporting",
    },
}
DEFAULT_GROUP = {
    "description": "Ungrouped assets.",
    "owner": "team:data-platform",
    "kinds": {"python"},
    "layer": "other",
}
PII_ASSETS = {
    "raw/crm_contacts",
    "raw/events",
    "stg_crm__contacts",
    "dim_users",
    "destination_sync",
}
# Every raw table (contracts.raw), the scores and the sync: what goes stale when a day is missed
# (their freshness policy here; their last update on the report, orchestration/defs/report.py).
FRESHNESS_ASSETS = (*(f"raw/{table}" for table in RAW_TABLES), "user_scores", "destination_sync")


def freshness_policy(settings: Settings | None = None) -> dg.FreshnessPolicy:
    """Fail when the last update is older than SEGFLOW_FRESHNESS_MAX_AGE_HOURS (warn at 3/4)."""
    hours = (settings or Settings.from_env()).freshness_max_age_hours
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=hours), warn_window=timedelta(hours=hours * 0.75)
    )


def decorate(spec: dg.AssetSpec, policy: dg.FreshnessPolicy | None = None) -> dg.AssetSpec:
    """Owners, kinds (at most 10), tags and the group's description for one asset."""
    group = GROUPS.get(spec.group_name or "", DEFAULT_GROUP)
    key = spec.key.to_user_string()
    kinds = set(spec.kinds) | set(group["kinds"])  # type: ignore[arg-type]
    tags = {
        **spec.tags,
        "layer": str(group["layer"]),
        "pii": "yes" if key in PII_ASSETS else "no",
        "partitions": "daily" if spec.partitions_def is not None else "none",
    }
    spec = spec.replace_attributes(
        owners=list(spec.owners) or [str(group["owner"])],
        kinds=set(sorted(kinds)[:10]),
        tags=tags,
        metadata={**spec.metadata, "group_description": str(group["description"])},
    )
    if policy is not None and key in FRESHNESS_ASSETS:
        spec = dg.apply_freshness_policy(spec, policy)
    return spec


@dg.definitions
def defs() -> dg.Definitions:
    policy = freshness_policy()
    merged = dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
    with warnings.catch_warnings():  # map_asset_specs is marked preview in 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return merged.map_asset_specs(func=lambda spec: decorate(spec, policy))
