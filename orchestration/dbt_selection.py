"""Split the dbt graph into the steps Dagster needs, read from the manifest.

Incremental models are daily-partitioned; the non-incremental models they read (staging
views) run before them; everything downstream runs after, unpartitioned;
models tagged `after_segments` read the Python segment tables and run last; models tagged
`training` (the ML training sets and label windows) belong to the weekly training job only,
never to the daily job. Deriving the split from the manifest means analysts add models without
touching the wiring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

AFTER_SEGMENTS_TAG = "after_segments"
TRAINING_TAG = "training"


@dataclass(frozen=True)
class DbtSelection:
    upstream: tuple[str, ...]
    incremental: tuple[str, ...]
    downstream: tuple[str, ...]
    after_segments: tuple[str, ...]
    training: tuple[str, ...] = ()


def split_models(manifest_path: Path) -> DbtSelection:
    manifest = json.loads(Path(manifest_path).read_text())
    models = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed", "snapshot")
    }
    parents = manifest["parent_map"]

    def ancestors(uid: str, seen: set[str]) -> set[str]:
        for parent in parents.get(uid, []):
            if parent in models and parent not in seen:
                seen.add(parent)
                ancestors(parent, seen)
        return seen

    def tagged(tag: str) -> set[str]:
        return {uid for uid, n in models.items() if tag in n["config"].get("tags", [])}

    after = tagged(AFTER_SEGMENTS_TAG)
    training = tagged(TRAINING_TAG) - after
    incremental = {
        uid
        for uid, n in models.items()
        if n["config"].get("materialized") == "incremental" and uid not in after | training
    }
    upstream: set[str] = set()
    for uid in incremental:
        upstream |= ancestors(uid, set())
    upstream -= incremental
    downstream = set(models) - incremental - upstream - after - training

    def names(ids: set[str]) -> tuple[str, ...]:
        return tuple(sorted(models[uid]["name"] for uid in ids))

    return DbtSelection(
        names(upstream), names(incremental), names(downstream), names(after), names(training)
    )


def window_vars(start: str, end: str) -> dict[str, str]:
    """dbt vars for a partition window [start, end) (ISO dates or datetimes)."""
    return {"min_date": start[:10], "max_date": end[:10]}


def build_args(models: tuple[str, ...], dbt_vars: dict[str, str] | None = None) -> list[str]:
    """The `dbt build` arguments of one step of the daily job (Dagster adds the same
    `--select` from the asset selection; tests follow DBT_INDIRECT_SELECTION=buildable)."""
    args = ["build", "--select", *models]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    return args


def daily_steps(selection: DbtSelection, dbt_vars: dict[str, str]) -> list[list[str]]:
    """The daily job's dbt invocations before the Python segment step, in order: the
    unpartitioned models the incremental ones read, the incremental models with the
    partition window, then everything downstream."""
    steps = [
        (selection.upstream, None),
        (selection.incremental, dbt_vars),
        (selection.downstream, None),
    ]
    return [build_args(models, v) for models, v in steps if models]
