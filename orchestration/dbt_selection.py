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
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

AFTER_SEGMENTS_TAG = "after_segments"
UNIT_TESTS_EXCLUDED = ("--exclude-resource-type", "unit_test")
TRAINING_TAG = "training"


@dataclass(frozen=True)
class DbtSelection:
    upstream: tuple[str, ...]
    incremental: tuple[str, ...]
    downstream: tuple[str, ...]
    after_segments: tuple[str, ...]
    training: tuple[str, ...] = ()
    # Every incremental model, whichever step builds it: a step holding one needs the run's
    # window (without it an incremental model rebuilds every date it covers).
    windowed: tuple[str, ...] = ()

    def needs_window(self, models: tuple[str, ...]) -> bool:
        return bool(set(models) & set(self.windowed))


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
        """Ephemeral models are left out: they are CTEs of the models that read them, not
        assets (Dagster) or buildable nodes of their own (dbt)."""
        return tuple(
            sorted(
                models[uid]["name"]
                for uid in ids
                if models[uid]["config"].get("materialized") != "ephemeral"
            )
        )

    every_incremental = {
        uid for uid, n in models.items() if n["config"].get("materialized") == "incremental"
    }
    return DbtSelection(
        names(upstream),
        names(incremental),
        names(downstream),
        names(after),
        names(training),
        names(every_incremental),
    )


def build_args(models: tuple[str, ...]) -> list[str]:
    """The `dbt build` arguments of one step of the daily job (Dagster adds the same
    `--select` from the asset selection; tests follow DBT_INDIRECT_SELECTION=buildable). The
    caller adds `--vars` (orchestration.run_window.dbt_vars_arg) and writes the window table;
    dbt unit tests are left out as in the pipeline (`pipeline_exclusions`)."""
    return ["build", "--select", *models, *pipeline_exclusions()]


def daily_steps(selection: DbtSelection) -> list[list[str]]:
    """The daily job's dbt invocations before the Python segment step, in order: the
    incremental models with the views they read (window from the run-window table), then
    everything downstream but the training sets."""
    steps = (selection.upstream + selection.incremental, selection.downstream)
    return [build_args(models) for models in steps if models]


def in_process_flags(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """What the daily job's in-process dbt steps add (orchestration/defs/dbt_warm.py; the
    transform benchmark runs the same). No JSON artifacts: each invocation's target folder is
    removed when it ends and nothing reads its manifest.json / run_results.json (~1 MB and
    ~0.2 CPU s a step). No debug log file (dbt_project/logs/dbt.log): dbt formats and scrubs
    every event (~1,000 a step) once per logger, ~0.2 CPU s a daily run; the run's own log keeps
    dbt's console lines (each node's start, result and errors). A DBT_LOG_LEVEL_FILE the caller
    set (e.g. debug, to see every statement) wins."""
    keep_log = bool(environ.get("DBT_LOG_LEVEL_FILE"))
    return ("--no-write-json", *(() if keep_log else ("--log-level-file", "none")))


def pipeline_exclusions(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """What the pipeline's `dbt build` steps leave out: dbt unit tests. They test the models'
    SQL on fixed inputs, not the day's data, so CI runs them (`make test`: test_dbt_transform's
    full build, test_user_tracking_plan), not every daily run (each builds its fixtures: seconds
    of a small day's fixed cost). A DBT_EXCLUDE_RESOURCE_TYPES the caller set wins (the flag
    would override it)."""
    return () if environ.get("DBT_EXCLUDE_RESOURCE_TYPES") else UNIT_TESTS_EXCLUDED
