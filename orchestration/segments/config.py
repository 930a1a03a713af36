"""Loads and validates segments.yml, flows.yml and triggers.yml into one `SegmentConfig`.

Everything is checked before anything runs: rule syntax, column names and types, duplicate
names, exclusion cycles, unknown blocks/flows/milestones and experiment shares. Every error is
a `SegmentConfigError` naming the file, the entry and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestration.segments import session
from orchestration.segments.rules import CompiledRule, RuleError, compile_rule
from orchestration.segments.schema import COLUMNS

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_SEGMENTS_PATH = CONFIG_DIR / "segments.yml"
DEFAULT_FLOWS_PATH = CONFIG_DIR / "flows.yml"
DEFAULT_TRIGGERS_PATH = CONFIG_DIR / "triggers.yml"
ALL_SEGMENTS = "all"  # reserved: the whole-experiment row in fct_experiment_results
CONTROL = "control"  # reserved variant name: the holdout, which gets no onboarding content
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class SegmentConfigError(ValueError):
    """A segments/flows/triggers file is invalid; the message names file, entry and problem."""


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
class Block:
    name: str
    milestone: str
    description: str


@dataclass(frozen=True)
class Variant:
    name: str
    share: float
    blocks: tuple[str, ...] | None  # None for the control holdout (no content)


@dataclass(frozen=True)
class Experiment:
    name: str
    flow: str
    variants: tuple[Variant, ...]  # control first, then the declared order


@dataclass(frozen=True)
class Flow:
    name: str
    description: str
    blocks: tuple[str, ...]
    experiment: Experiment | None


@dataclass(frozen=True)
class Trigger:
    name: str
    description: str
    rule: CompiledRule | None  # exactly one of rule / entered_segment is set
    entered_segment: str | None
    for_days: int  # condition must hold this many consecutive days before it fires
    realtime: bool = False  # also fired intraday by the realtime consumer (for_days 1 only)


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
    blocks, flows, segment_flows, default_flow = _load_flows(
        flows_path, {s.name for s in segments}, set(milestones), columns
    )
    triggers = _load_triggers(triggers_path, {s.name for s in segments}, columns)
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


def _read_yaml(path: Path, top_key: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SegmentConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise SegmentConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or top_key not in data:
        raise SegmentConfigError(f"{path}: expected a mapping with a `{top_key}:` key")
    return data


def _check_keys(
    path: Path, what: str, entry: Mapping[str, Any], allowed: set[str], required: set[str]
) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise SegmentConfigError(
            f"{path}: {what}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    missing = required - set(entry)
    if missing:
        raise SegmentConfigError(f"{path}: {what}: missing required key(s) {sorted(missing)}")


def _check_name(path: Path, what: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SegmentConfigError(
            f"{path}: {what}: name {name!r} must be lower_snake_case "
            "(letters, digits, _; starting with a letter)"
        )
    return name


def _compile(
    path: Path, what: str, text: Any, columns: Mapping[str, str], prefix: str
) -> CompiledRule:
    """Compile a rule; `session.*` values (session.py) are columns of the intraday path."""
    try:
        return compile_rule(session.rewrite(text), {**columns, **session.SESSION_COLUMNS}, prefix)
    except (RuleError, session.SessionFieldError) as exc:
        raise SegmentConfigError(f"{path}: {what}: rule {text!r}: {exc}") from None


def _check_session(path: Path, what: str, rule: CompiledRule | None, realtime: bool) -> None:
    if rule is not None and session.uses_session(rule.columns) and not realtime:
        raise SegmentConfigError(
            f"{path}: {what}: session.* values exist only intraday; mark it `realtime: true`"
        )


def _load_segments(path: Path, columns: Mapping[str, str]):
    entries = _read_yaml(path, "segments")["segments"]
    if not isinstance(entries, list) or not entries:
        raise SegmentConfigError(f"{path}: `segments:` must be a non-empty list")
    raw: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SegmentConfigError(f"{path}: segment #{index + 1}: expected a mapping")
        name = _check_name(path, f"segment #{index + 1}", entry.get("name"))
        what = f"segment {name!r}"
        if name in seen:
            raise SegmentConfigError(
                f"{path}: duplicate segment name {name!r} "
                f"(entries #{seen[name] + 1} and #{index + 1})"
            )
        if name == ALL_SEGMENTS:
            raise SegmentConfigError(f"{path}: {what}: the name {ALL_SEGMENTS!r} is reserved")
        seen[name] = index
        _check_keys(
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
            _check_name(path, f"{what} group", group)
        excludes = entry.get("excludes") or []
        if not isinstance(excludes, list) or not all(isinstance(x, str) for x in excludes):
            raise SegmentConfigError(
                f"{path}: {what}: excludes must be a list of segment or group names"
            )
        rule = _compile(path, what, entry["rule"], columns, f"s{index}")
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
                _realtime_flag(path, f"segment {entry['name']!r}", entry.get("realtime", False)),
                _realtime_flag(
                    path,
                    f"segment {entry['name']!r}",
                    entry.get("launchdarkly", False),
                    "launchdarkly",
                ),
            )
        )
        _check_session(path, f"segment {entry['name']!r}", entry["rule"], segments[-1].realtime)
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


def _load_flows(
    path: Path, segment_names: set[str], milestones: set[str], columns: Mapping[str, str]
):
    data = _read_yaml(path, "flows")
    _check_keys(
        path,
        "top level",
        data,
        {"blocks", "flows", "segment_flows", "default_flow", "flags"},  # flags: realtime/flags.py
        {"blocks", "flows"},
    )
    blocks: dict[str, Block] = {}
    for name, spec in (data.get("blocks") or {}).items():
        what = f"block {name!r}"
        _check_name(path, what, name)
        if not isinstance(spec, dict):
            raise SegmentConfigError(f"{path}: {what}: expected a mapping with `milestone:`")
        _check_keys(path, what, spec, {"milestone", "description"}, {"milestone"})
        milestone = spec["milestone"]
        if milestone not in milestones:
            raise SegmentConfigError(
                f"{path}: {what}: unknown milestone {milestone!r}; the "
                f"tracking plan has {sorted(milestones)}"
            )
        if f"reached_{milestone}" not in columns:
            raise SegmentConfigError(
                f"{path}: {what}: milestone {milestone!r} has no "
                f"`reached_{milestone}` column in the user features"
            )
        blocks[name] = Block(name, milestone, str(spec.get("description") or ""))

    flows: dict[str, Flow] = {}
    experiment_names: dict[str, str] = {}
    for name, spec in (data.get("flows") or {}).items():
        what = f"flow {name!r}"
        _check_name(path, what, name)
        if not isinstance(spec, dict):
            raise SegmentConfigError(f"{path}: {what}: expected a mapping with `blocks:`")
        _check_keys(path, what, spec, {"description", "blocks", "experiment"}, {"blocks"})
        flow_blocks = _block_list(path, what, spec["blocks"], blocks)
        experiment = None
        if spec.get("experiment") is not None:
            experiment = _experiment(path, name, spec["experiment"], flow_blocks, blocks)
            if experiment.name in experiment_names:
                raise SegmentConfigError(
                    f"{path}: experiment {experiment.name!r} is used by flows "
                    f"{experiment_names[experiment.name]!r} and {name!r}"
                )
            experiment_names[experiment.name] = name
        flows[name] = Flow(name, str(spec.get("description") or ""), flow_blocks, experiment)

    segment_flows = data.get("segment_flows") or {}
    if not isinstance(segment_flows, dict):
        raise SegmentConfigError(f"{path}: segment_flows must map segment name -> flow name")
    for segment, flow in segment_flows.items():
        if segment not in segment_names:
            raise SegmentConfigError(f"{path}: segment_flows: unknown segment {segment!r}")
        if flow not in flows:
            raise SegmentConfigError(
                f"{path}: segment_flows: segment {segment!r} maps to unknown flow {flow!r}"
            )
    default_flow = data.get("default_flow")
    if default_flow is not None and default_flow not in flows:
        raise SegmentConfigError(f"{path}: default_flow {default_flow!r} is not a flow")
    return blocks, flows, dict(segment_flows), default_flow


def _block_list(path: Path, what: str, names: Any, blocks: Mapping[str, Block]) -> tuple[str, ...]:
    if not isinstance(names, list) or not names:
        raise SegmentConfigError(f"{path}: {what}: blocks must be a non-empty list of block names")
    for name in names:
        if name not in blocks:
            raise SegmentConfigError(
                f"{path}: {what}: unknown block {name!r}; known blocks: {sorted(blocks)}"
            )
    if len(set(names)) != len(names):
        raise SegmentConfigError(f"{path}: {what}: a block is listed twice")
    return tuple(names)


def _experiment(
    path: Path, flow: str, spec: Any, flow_blocks: tuple[str, ...], blocks: Mapping[str, Block]
) -> Experiment:
    what = f"flow {flow!r} experiment"
    if not isinstance(spec, dict):
        raise SegmentConfigError(f"{path}: {what}: expected a mapping")
    _check_keys(path, what, spec, {"name", "control_share", "variants"}, {"name", "variants"})
    name = _check_name(path, what, spec["name"])
    what = f"flow {flow!r} experiment {name!r}"
    control_share = _share(path, what, CONTROL, spec.get("control_share", 0.0), allow_zero=True)
    variants = [Variant(CONTROL, control_share, None)] if control_share > 0 else []
    if not isinstance(spec["variants"], list) or not spec["variants"]:
        raise SegmentConfigError(f"{path}: {what}: variants must be a non-empty list")
    for entry in spec["variants"]:
        if not isinstance(entry, dict):
            raise SegmentConfigError(f"{path}: {what}: each variant needs name and share")
        _check_keys(path, what, entry, {"name", "share", "blocks"}, {"name", "share"})
        vname = _check_name(path, f"{what} variant", entry["name"])
        if vname == CONTROL or vname in {v.name for v in variants}:
            raise SegmentConfigError(
                f"{path}: {what}: variant name {vname!r} is duplicate or "
                f"reserved ({CONTROL!r} is the holdout, set control_share)"
            )
        vblocks = (
            flow_blocks
            if entry.get("blocks") is None
            else _block_list(path, f"{what} variant {vname!r}", entry["blocks"], blocks)
        )
        variants.append(Variant(vname, _share(path, what, vname, entry["share"]), vblocks))
    total = sum(v.share for v in variants)
    if abs(total - 1.0) > 1e-9:
        raise SegmentConfigError(
            f"{path}: {what}: control_share + variant shares = {total:g}; they must add up to 1"
        )
    return Experiment(name, flow, tuple(variants))


def _share(path: Path, what: str, variant: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (0 <= value <= 1) or (value == 0 and not allow_zero):
        raise SegmentConfigError(
            f"{path}: {what}: share of {variant!r} must be a number in (0, 1], got {value!r}"
        )
    return float(value)


def _load_triggers(
    path: Path, segment_names: set[str], columns: Mapping[str, str]
) -> tuple[Trigger, ...]:
    entries = _read_yaml(path, "triggers")["triggers"] or []
    if not isinstance(entries, list):
        raise SegmentConfigError(f"{path}: `triggers:` must be a list")
    triggers: list[Trigger] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SegmentConfigError(f"{path}: trigger #{index + 1}: expected a mapping")
        name = _check_name(path, f"trigger #{index + 1}", entry.get("name"))
        what = f"trigger {name!r}"
        if name in {t.name for t in triggers}:
            raise SegmentConfigError(f"{path}: duplicate trigger name {name!r}")
        _check_keys(
            path,
            what,
            entry,
            {"name", "description", "rule", "entered_segment", "for_days", "realtime"},
            {"name"},
        )
        if ("rule" in entry) == ("entered_segment" in entry):
            raise SegmentConfigError(
                f"{path}: {what}: set exactly one of `rule:` or `entered_segment:`"
            )
        rule = (
            _compile(path, what, entry["rule"], columns, f"t{index}") if "rule" in entry else None
        )
        segment = entry.get("entered_segment")
        if segment is not None and segment not in segment_names:
            raise SegmentConfigError(
                f"{path}: {what}: entered_segment {segment!r} is not a segment in segments.yml"
            )
        for_days = entry.get("for_days", 1)
        if not isinstance(for_days, int) or isinstance(for_days, bool) or not 1 <= for_days <= 365:
            raise SegmentConfigError(f"{path}: {what}: for_days must be an integer 1..365")
        realtime = _realtime_flag(path, what, entry.get("realtime", False))
        _check_session(path, what, rule, realtime)
        if realtime and for_days != 1:
            raise SegmentConfigError(f"{path}: {what}: a realtime trigger needs for_days 1")
        triggers.append(
            Trigger(name, str(entry.get("description") or ""), rule, segment, for_days, realtime)
        )
    return tuple(triggers)


def _realtime_flag(path: Path, what: str, value: Any, key: str = "realtime") -> bool:
    if not isinstance(value, bool):
        raise SegmentConfigError(f"{path}: {what}: {key} must be true or false, got {value!r}")
    return value
