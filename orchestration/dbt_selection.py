"""Split the dbt graph into the three runs Dagster needs, read from the manifest.

Incremental models are daily-partitioned; the non-incremental models they read (staging
views) or that their tests compare against run before them; everything downstream runs after, unpartitioned;
models tagged `after_segments` read the Python segment tables and run last. Deriving the
split from the manifest means analysts add models without touching the wiring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

AFTER_SEGMENTS_TAG = "after_segments"


@dataclass(frozen=True)
class DbtSelection:
    upstream: tuple[str, ...]
    incremental: tuple[str, ...]
    downstream: tuple[str, ...]
    after_segments: tuple[str, ...]


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

    after = {uid for uid, n in models.items() if AFTER_SEGMENTS_TAG in n["config"].get("tags", [])}
    incremental = {
        uid
        for uid, n in models.items()
        if n["config"].get("materialized") == "incremental" and uid not in after
    }
    # Models an incremental model's tests compare against (relationships) must exist before
    # the partitioned step runs its tests, so they join the upstream step with their ancestors.
    tested_against = {
        parent
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test" and incremental & set(node["depends_on"]["nodes"])
        for parent in node["depends_on"]["nodes"]
        if parent in models and parent not in incremental
    }
    upstream: set[str] = set()
    for uid in incremental | tested_against:
        upstream |= ancestors(uid, set()) | ({uid} if uid in tested_against else set())
    upstream -= incremental
    downstream = set(models) - incremental - upstream - after

    def names(ids: set[str]) -> tuple[str, ...]:
        return tuple(sorted(models[uid]["name"] for uid in ids))

    return DbtSelection(names(upstream), names(incremental), names(downstream), names(after))
