"""flows.yml (content blocks, flows, experiments, segment -> flow) and triggers.yml, read and
checked against the segments, the tracking plan's milestones and the feature columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

CONTROL = "control"  # reserved variant name: the holdout, which gets no onboarding content


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


def load_flows(
    path: Path, segment_names: set[str], milestones: set[str], columns: Mapping[str, str]
):
    data = read_yaml(path, "flows")
    check_keys(
        path,
        "top level",
        data,
        {"blocks", "flows", "segment_flows", "default_flow", "flags"},  # flags: realtime/flags.py
        {"blocks", "flows"},
    )
    blocks: dict[str, Block] = {}
    for name, spec in (data.get("blocks") or {}).items():
        what = f"block {name!r}"
        check_name(path, what, name)
        if not isinstance(spec, dict):
            raise SegmentConfigError(f"{path}: {what}: expected a mapping with `milestone:`")
        check_keys(path, what, spec, {"milestone", "description"}, {"milestone"})
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
        check_name(path, what, name)
        if not isinstance(spec, dict):
            raise SegmentConfigError(f"{path}: {what}: expected a mapping with `blocks:`")
        check_keys(path, what, spec, {"description", "blocks", "experiment"}, {"blocks"})
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
    check_keys(path, what, spec, {"name", "control_share", "variants"}, {"name", "variants"})
    name = check_name(path, what, spec["name"])
    what = f"flow {flow!r} experiment {name!r}"
    control_share = _share(path, what, CONTROL, spec.get("control_share", 0.0), allow_zero=True)
    variants = [Variant(CONTROL, control_share, None)] if control_share > 0 else []
    if not isinstance(spec["variants"], list) or not spec["variants"]:
        raise SegmentConfigError(f"{path}: {what}: variants must be a non-empty list")
    for entry in spec["variants"]:
        if not isinstance(entry, dict):
            raise SegmentConfigError(f"{path}: {what}: each variant needs name and share")
        check_keys(path, what, entry, {"name", "share", "blocks"}, {"name", "share"})
        vname = check_name(path, f"{what} variant", entry["name"])
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


def load_triggers(
    path: Path, segment_names: set[str], columns: Mapping[str, str]
) -> tuple[Trigger, ...]:
    entries = read_yaml(path, "triggers")["triggers"] or []
    if not isinstance(entries, list):
        raise SegmentConfigError(f"{path}: `triggers:` must be a list")
    triggers: list[Trigger] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SegmentConfigError(f"{path}: trigger #{index + 1}: expected a mapping")
        name = check_name(path, f"trigger #{index + 1}", entry.get("name"))
        what = f"trigger {name!r}"
        if name in {t.name for t in triggers}:
            raise SegmentConfigError(f"{path}: duplicate trigger name {name!r}")
        check_keys(
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
            compile_checked(path, what, entry["rule"], columns, f"t{index}")
            if "rule" in entry
            else None
        )
        segment = entry.get("entered_segment")
        if segment is not None and segment not in segment_names:
            raise SegmentConfigError(
                f"{path}: {what}: entered_segment {segment!r} is not a segment in segments.yml"
            )
        for_days = entry.get("for_days", 1)
        if not isinstance(for_days, int) or isinstance(for_days, bool) or not 1 <= for_days <= 365:
            raise SegmentConfigError(f"{path}: {what}: for_days must be an integer 1..365")
        realtime = realtime_flag(path, what, entry.get("realtime", False))
        check_session(path, what, rule, realtime)
        if realtime and for_days != 1:
            raise SegmentConfigError(f"{path}: {what}: a realtime trigger needs for_days 1")
        triggers.append(
            Trigger(name, str(entry.get("description") or ""), rule, segment, for_days, realtime)
        )
    return tuple(triggers)
