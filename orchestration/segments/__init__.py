"""Segments, onboarding flows, experiments and behavioural triggers (plain Python over DuckDB).

Public API (the Dagster wiring and the CLI call these):
- `load_config(segments_path, flows_path, triggers_path, columns=None) -> SegmentConfig`
- `assign_segments(conn, config, dates) -> SegmentRunReport`
- `experiment_results(conn, config, as_of, min_sample=Settings.experiment_min_sample, alpha=0.05) -> DataFrame`
- `segment_size_changes(conn, day, max_change_share, min_previous_size=1) -> list[str]`
- `warehouse_columns(conn) -> dict[str, str]` (validate the rules against the live warehouse)
"""

from orchestration.segments.assign import (
    SegmentRunReport,
    assign_segments,
    segment_size_changes,
    segment_sizes,
)
from orchestration.segments.config import (
    DEFAULT_FLOWS_PATH,
    DEFAULT_SEGMENTS_PATH,
    DEFAULT_TRIGGERS_PATH,
    SegmentConfig,
    SegmentConfigError,
    load_config,
)
from orchestration.segments.experiments import experiment_results
from orchestration.segments.membership import rebuild_membership
from orchestration.segments.schema import COLUMNS, warehouse_columns
from orchestration.segments.triggers import fire_triggers

__all__ = [
    "COLUMNS",
    "DEFAULT_FLOWS_PATH",
    "DEFAULT_SEGMENTS_PATH",
    "DEFAULT_TRIGGERS_PATH",
    "SegmentConfig",
    "SegmentConfigError",
    "SegmentRunReport",
    "assign_segments",
    "experiment_results",
    "fire_triggers",
    "load_config",
    "rebuild_membership",
    "segment_size_changes",
    "segment_sizes",
    "warehouse_columns",
]
