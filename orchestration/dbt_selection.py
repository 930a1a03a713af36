"""Split the dbt graph into the three runs Dagster needs, read from the manifest.

Incremental models are daily-partitioned; the non-incremental models they read (staging
views) run before them; everything downstream runs after, unpartitioned;
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
    upstream: set[str] = set()
    for uid in incremental:
        upstream |= ancestors(uid, set())
    upstream -= incremental
    downstream = set(models) - incremental - upstream - after

    def names(ids: set[str]) -> tuple[str, ...]:
        return tuple(sorted(models[uid]["name"] for uid in ids))

    return DbtSelection(names(upstream), names(incremental), names(downstream), names(after))
