"""Shared checks for reading segments.yml, flows.yml and triggers.yml: the YAML, the keys of
an entry, names, rules (compiled with `session.*` values allowed only on realtime entries).
Every problem is a `SegmentConfigError` naming the file, the entry and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestration.segments import session
from orchestration.segments.rules import CompiledRule, RuleError, compile_rule

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class SegmentConfigError(ValueError):
    """A segments/flows/triggers file is invalid; the message names file, entry and problem."""


def read_yaml(path: Path, top_key: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SegmentConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise SegmentConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or top_key not in data:
        raise SegmentConfigError(f"{path}: expected a mapping with a `{top_key}:` key")
    return data


def check_keys(
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


def check_name(path: Path, what: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SegmentConfigError(
            f"{path}: {what}: name {name!r} must be lower_snake_case "
            "(letters, digits, _; starting with a letter)"
        )
    return name


def compile_checked(
    path: Path, what: str, text: Any, columns: Mapping[str, str], prefix: str
) -> CompiledRule:
    """Compile a rule; `session.*` values (session.py) are columns of the intraday path."""
    try:
        return compile_rule(session.rewrite(text), {**columns, **session.SESSION_COLUMNS}, prefix)
    except (RuleError, session.SessionFieldError) as exc:
        raise SegmentConfigError(f"{path}: {what}: rule {text!r}: {exc}") from None


def check_session(path: Path, what: str, rule: CompiledRule | None, realtime: bool) -> None:
    if rule is not None and session.uses_session(rule.columns) and not realtime:
        raise SegmentConfigError(
            f"{path}: {what}: session.* values exist only intraday; mark it `realtime: true`"
        )


def realtime_flag(path: Path, what: str, value: Any, key: str = "realtime") -> bool:
    if not isinstance(value, bool):
        raise SegmentConfigError(f"{path}: {what}: {key} must be true or false, got {value!r}")
    return value
