"""Feature flags declared in flows.yml (`flags:`), evaluated from a user's profile.

    flags:
      onboarding_flow: {from: onboarding_flow, default: default_onboarding}
      show_checklist: {from: next_block, equals: interactive_checklist, default: false}
      in_churn_rescue: {segment: churn_risks, default: false}

`from` names a profile field (onboarding_flow, next_block, experiment_variant,
primary_segment); with `equals` the flag is a boolean (field == value); `segment` makes a
boolean "user is in this segment". A user segflow does not know is evaluated on the documented
default profile (the default flow and its first block, no segments) with OFREP reason
DEFAULT; `default` is the value when the field is empty (e.g. every block done, or the
experiment's control arm, which gets no content: use a value such as `none`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestration.segments.config import SegmentConfig, SegmentConfigError

FIELDS = ("onboarding_flow", "next_block", "experiment_variant", "primary_segment")


@dataclass(frozen=True)
class Flag:
    key: str
    source: str | None  # profile field
    equals: Any
    segment: str | None
    default: Any
    description: str = ""

    def evaluate(self, profile: dict[str, Any]) -> tuple[Any, str]:
        """(value, OFREP reason) for a profile (ProfileReader.profile or .default)."""
        value, reason = self._value(profile)
        return value, reason if profile.get("known") else "DEFAULT"

    def _value(self, profile: dict[str, Any]) -> tuple[Any, str]:
        if self.segment is not None:
            return self.segment in {s["name"] for s in profile["segments"]}, "TARGETING_MATCH"
        if self.source == "experiment_variant":
            field = (profile.get("experiment") or {}).get("arm")
        else:
            field = profile.get(self.source)
        reason = "SPLIT" if self.source == "experiment_variant" else "TARGETING_MATCH"
        if self.equals is not None:
            return field == self.equals, reason
        return (self.default, "DEFAULT") if field is None else (field, reason)


def load_flags(flows_path: Path, config: SegmentConfig) -> dict[str, Flag]:
    """The `flags:` section of flows.yml, checked against the segments and flows."""
    data = yaml.safe_load(Path(flows_path).read_text()) or {}
    entries = data.get("flags") or {}
    if not isinstance(entries, dict):
        raise SegmentConfigError(f"{flows_path}: flags must map flag key -> definition")
    flags = {}
    for key, spec in entries.items():
        what = f"{flows_path}: flag {key!r}"
        if not isinstance(spec, dict) or "default" not in spec:
            raise SegmentConfigError(f"{what}: expected a mapping with `default:`")
        unknown = set(spec) - {"from", "equals", "segment", "default", "description"}
        if unknown:
            raise SegmentConfigError(f"{what}: unknown key(s) {sorted(unknown)}")
        if ("from" in spec) == ("segment" in spec):
            raise SegmentConfigError(f"{what}: set exactly one of `from:` or `segment:`")
        if "from" in spec and spec["from"] not in FIELDS:
            raise SegmentConfigError(f"{what}: from {spec['from']!r} is not one of {FIELDS}")
        if "segment" in spec and spec["segment"] not in config.segment_names:
            raise SegmentConfigError(f"{what}: segment {spec['segment']!r} is not in segments.yml")
        boolean = "segment" in spec or "equals" in spec
        if boolean and not isinstance(spec["default"], bool):
            raise SegmentConfigError(f"{what}: a true/false flag needs default true or false")
        flow_default = spec.get("from") == "onboarding_flow" and not boolean
        if flow_default and spec["default"] not in config.flows:
            raise SegmentConfigError(f"{what}: default {spec['default']!r} is not a flow")
        flags[key] = Flag(
            key,
            spec.get("from"),
            spec.get("equals"),
            spec.get("segment"),
            spec["default"],
            str(spec.get("description") or ""),
        )
    return flags
