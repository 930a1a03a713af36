"""Loads and validates segments.yml, flows.yml and triggers.yml into one `SegmentConfig`.

Everything is checked before anything runs: rule syntax, column names and types, duplicate
names, exclusion cycles, unknown blocks/flows/milestones and experiment shares. Every error is
a `SegmentConfigError` naming the file, the entry and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.segments import session
from orchestration.segments.config_flows import (
    CONTROL,
    Block,
    Experiment,
    Flow,
    Trigger,
    Variant,
    load_flows,
    load_triggers,
)
from orchestration.segments.config_parse import (
    SegmentConfigError,
    check_keys,
    check_name,
    check_session,
    compile_checked,
    read_yaml,
    realtime_flag,
)
from orchestration.segments.rules import CompiledRule
from orchestration.segments.schema import COLUMNS

__all__ = [
    "ALL_SEGMENTS", "CONTROL", "DEFAULT_FLOWS_PATH", "DEFAULT_SEGMENTS_PATH",
    "DEFAULT_TRIGGERS_PATH", "Block", "Experiment", "Flow", "Segment", "SegmentConfig",
    "SegmentConfigError", "Trigger", "Variant", "load_config",
]  # fmt: skip

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_SEGMENTS_PATH = CONFIG_DIR / "segments.yml"
DEFAULT_FLOWS_PATH = CONFIG_DIR / "flows.yml"
DEFAULT_TRIGGERS_PATH = CONFIG_DIR / "triggers.yml"
ALL_SEGMENTS = "all"  # reserved: the whole-experiment row in fct_experiment_results


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    rule: CompiledRule
    priority: int
    group: str | None
    excludes: tuple[str, ...]  # segments this one removes the user from (groups expanded)
    order: int  # position in the file: breaks priority ties (earlier wins)
    realtime: bool = False  # re-evaluated intraday by the realtime consumer (realtime/)
    launchdarkly: bool = False  # mirrored as a LaunchDarkly segment (activation/destinations)


@dataclass(frozen=True)
class SegmentConfig:
    segments: tuple[Segment, ...]
    resolution_order: tuple[str, ...]  # exclusions are applied in this (topological) order
    removals: dict[str, tuple[str, ...]]  # segment -> segments it removes the user from
    blocks: dict[str, Block]
    flows: dict[str, Flow]
    segment_flows: dict[str, str]
    default_flow: str | None
    triggers: tuple[Trigger, ...]
    columns: dict[str, str] = field(repr=False)
    sources: tuple[Path, ...] = ()

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)

    @property
    def experiments(self) -> tuple[Experiment, ...]:
        return tuple(f.experiment for f in self.flows.values() if f.experiment)

    @property
    def launchdarkly_segments(self) -> tuple[str, ...]:
        """Segments opted in to LaunchDarkly with `launchdarkly: true`."""
        return tuple(s.name for s in self.segments if s.launchdarkly)

    def referenced_columns(self) -> set[str]:
        """Warehouse columns the rules, triggers and blocks read (session.* values are not
        warehouse columns: see session.py)."""
        cols = {c for s in self.segments for c in s.rule.columns}
        cols |= {c for t in self.triggers if t.rule for c in t.rule.columns}
        cols |= {f"reached_{b.milestone}" for b in self.blocks.values()}
        return cols - set(session.SESSION_COLUMNS)


def load_config(
    segments_path: Path | str = DEFAULT_SEGMENTS_PATH,
    flows_path: Path | str = DEFAULT_FLOWS_PATH,
    triggers_path: Path | str = DEFAULT_TRIGGERS_PATH,
    columns: Mapping[str, str] | None = None,
    milestones: Sequence[str] | None = None,
) -> SegmentConfig:
    """Read and validate the three files. `columns` defaults to the declared contract schema
    (`schema.COLUMNS`); pass `schema.warehouse_columns(conn)` to check against the warehouse.
    `milestones` defaults to the tracking plan's milestone names."""
    columns = dict(COLUMNS if columns is None else columns)
    if milestones is None:
        from contracts import tracking_plan

        milestones = tracking_plan.load().milestone_names
    segments_path, flows_path, triggers_path = map(Path, (segments_path, flows_path, triggers_path))
    segments, order, removals = _load_segments(segments_path, columns)
    blocks, flows, segment_flows, default_flow = load_flows(
        flows_path, {s.name for s in segments}, set(milestones), columns
    )
    triggers = load_triggers(triggers_path, {s.name for s in segments}, columns)
    return SegmentConfig(
        segments,
        order,
        removals,
        blocks,
        flows,
        segment_flows,
        default_flow,
        triggers,
        columns,
        (segments_path, flows_path, triggers_path),
    )


def load_configured(settings: Any) -> SegmentConfig:
    """The deployment's segment files (the settings' paths) against its declared columns, the
    custom CRM attributes its sources.yml declares included (schema.declared_schema)."""
    from orchestration.segments.schema import declared_schema

    return load_config(
        settings.segments_file,
        settings.flows_file,
        settings.triggers_file,
        declared_schema(settings),
    )


def _load_segments(path: Path, columns: Mapping[str, str]):
    entries = read_yaml(path, "segments")["segments"]
    if not isinstance(entries, list) or not entries:
        raise SegmentConfigError(f"{path}: `segments:` must be a non-empty list")
    raw: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SegmentConfigError(f"{path}: segment #{index + 1}: expected a mapping")
        name = check_name(path, f"segment #{index + 1}", entry.get("name"))
        what = f"segment {name!r}"
        if name in seen:
            raise SegmentConfigError(
                f"{path}: duplicate segment name {name!r} "
                f"(entries #{seen[name] + 1} and #{index + 1})"
            )
        if name == ALL_SEGMENTS:
            raise SegmentConfigError(f"{path}: {what}: the name {ALL_SEGMENTS!r} is reserved")
        seen[name] = index
        check_keys(
            path,
            what,
            entry,
            {
                "name",
                "description",
                "rule",
                "priority",
                "group",
                "excludes",
                "realtime",
                "launchdarkly",
            },
            {"name", "rule", "priority"},
        )
        if not isinstance(entry["priority"], int) or isinstance(entry["priority"], bool):
            raise SegmentConfigError(
                f"{path}: {what}: priority must be an integer "
                f"(higher wins), got {entry['priority']!r}"
            )
        group = entry.get("group")
        if group is not None:
            check_name(path, f"{what} group", group)
        excludes = entry.get("excludes") or []
        if not isinstance(excludes, list) or not all(isinstance(x, str) for x in excludes):
            raise SegmentConfigError(
                f"{path}: {what}: excludes must be a list of segment or group names"
            )
        rule = compile_checked(path, what, entry["rule"], columns, f"s{index}")
        raw.append({**entry, "rule": rule, "excludes": excludes, "group": group, "order": index})

    groups: dict[str, list[str]] = {}
    for entry in raw:
        if entry["group"]:
            groups.setdefault(entry["group"], []).append(entry["name"])
    clash = set(groups) & set(seen)
    if clash:
        raise SegmentConfigError(
            f"{path}: name(s) {sorted(clash)} used both as a group and as a segment"
        )
    segments = []
    for entry in raw:
        expanded: list[str] = []
        for target in entry["excludes"]:
            if target in groups:
                expanded += [m for m in groups[target] if m != entry["name"]]
            elif target in seen:
                expanded.append(target)
            else:
                raise SegmentConfigError(
                    f"{path}: segment {entry['name']!r}: excludes unknown "
                    f"segment or group {target!r}"
                )
        if entry["name"] in expanded or entry["group"] in entry["excludes"]:
            raise SegmentConfigError(
                f"{path}: segment {entry['name']!r}: conflict: it "
                "excludes itself (directly or through its own group)"
            )
        segments.append(
            Segment(
                entry["name"],
                str(entry.get("description") or ""),
                entry["rule"],
                entry["priority"],
                entry["group"],
                tuple(dict.fromkeys(expanded)),
                entry["order"],
                realtime_flag(path, f"segment {entry['name']!r}", entry.get("realtime", False)),
                realtime_flag(
                    path,
                    f"segment {entry['name']!r}",
                    entry.get("launchdarkly", False),
                    "launchdarkly",
                ),
            )
        )
        check_session(path, f"segment {entry['name']!r}", entry["rule"], segments[-1].realtime)
    order, removals = _resolution_order(path, segments)
    return tuple(segments), order, removals


def _rank(segment: Segment) -> tuple[int, int]:
    return (-segment.priority, segment.order)


def _resolution_order(path: Path, segments: list[Segment]):
    """Topological order of the 'removes the user from' graph: explicit `excludes:` edges
    plus, inside each exclusive group, an edge from every segment to each lower-ranked one.
    Applying removals in any other order could give a different answer, so a cycle (a
    removes b ... removes a) is a configuration error."""
    by_name = {s.name: s for s in segments}
    edges: dict[str, dict[str, str]] = {s.name: {} for s in segments}  # a -> b -> why
    for s in segments:
        for target in s.excludes:
            edges[s.name][target] = f"{s.name} excludes {target}"
        if s.group:
            for other in segments:
                if other.group == s.group and _rank(s) < _rank(other):
                    edges[s.name].setdefault(
                        other.name, f"{s.name} outranks {other.name} in group {s.group!r}"
                    )
    state: dict[str, int] = {}
    order: list[str] = []
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(edges[name], key=lambda n: _rank(by_name[n])):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                reasons = "; ".join(edges[a][b] for a, b in zip(cycle, cycle[1:], strict=False))
                raise SegmentConfigError(
                    f"{path}: cycle in exclusive groups/excludes: {' -> '.join(cycle)} "
                    f"({reasons}); the result would depend on evaluation order"
                )
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2
        order.append(name)

    for s in sorted(segments, key=_rank):
        if s.name not in state:
            visit(s.name)
    removals = {
        name: tuple(sorted(targets, key=lambda n: _rank(by_name[n])))
        for name, targets in edges.items()
    }
    return tuple(reversed(order)), removals
