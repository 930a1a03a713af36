"""One column rule of `sources.yml` (`columns: {<contract column>: <rule>}`) and the
`identity:` block, parsed and validated; see `mappings.py` for the whole file. Errors name the
file, the source and the key."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

TS_FORMATS = ("iso", "epoch_s", "epoch_ms", "epoch_us")

_RULE_KEYS = {
    "from",
    "format",
    "case",
    "map",
    "default",
    "divide_by",
    "minor_units",
    "size_bucket",
    "const",
    "file_name",
    "merge",
    "rest",
    "prefix",
    "fallback",
}


class MappingError(ValueError):
    """An invalid `sources.yml`: the message names the file, the source and the key."""


@dataclass(frozen=True)
class ColumnRule:
    paths: tuple[tuple[str, ...], ...] = ()  # coalesce of these paths
    formats: tuple[str, ...] = ()  # timestamp formats tried in order
    case: str | None = None
    value_map: tuple[tuple[str, str], ...] = ()
    default: str | None = None
    divide_by: float | None = None
    minor_units: bool = False
    size_bucket: bool = False
    const: str | None = None
    file_name: tuple[tuple[str, str], ...] = ()
    merge: bool = False
    rest: tuple[str, ...] | None = None  # exclude these keys (and prefixed keys)
    rest_exclude_prefixes: tuple[str, ...] = ()
    prefix: str | None = None
    # used when every `from` path is empty (invoices' paid_at: only for paid/refunded rows);
    # the loader counts the rows that took it
    fallback: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Identity:
    match_by: str | None = None  # "email": matched to identify calls' traits.email
    email: tuple[tuple[str, ...], ...] = ()  # where the record's email is (default: email rule)
    external_id: tuple[tuple[str, ...], ...] = ()  # a column holding the product user id


def config_error(where: str, source: str, key: str, message: str) -> MappingError:
    return MappingError(f"{where}: source {source!r}: key {key!r}: {message}")


def str_list(value: Any, where: str, source: str, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise config_error(
            where, source, key, f"expected a string or a list of strings, found {value!r}"
        )
    return list(value)


def parse_path(text: str) -> tuple[str, ...]:
    """`$.a.b` -> ("a", "b"); anything else is one key (spaces, `$` and dots allowed)."""
    if text.startswith("$."):
        return tuple(part for part in text[2:].split(".") if part)
    return (text,)


def _paths(value: Any, where: str, source: str, key: str) -> tuple[tuple[str, ...], ...]:
    items = str_list(value, where, source, key)
    paths = tuple(parse_path(v) for v in items)
    if any(not p for p in paths):
        raise config_error(where, source, key, f"empty path in {items!r}")
    return paths


def parse_rule(rule: Any, where: str, source: str, key: str) -> ColumnRule:
    """One `columns:` entry: a name, a list of names, or a mapping (where the value comes from,
    how it is shaped); every key checked, and a rule must say where the value comes from."""
    if isinstance(rule, (str, list)):
        return ColumnRule(paths=_paths(rule, where, source, key))
    if not isinstance(rule, dict):
        raise config_error(
            where, source, key, f"expected a column name, a list or a mapping, found {rule!r}"
        )
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise config_error(
            where,
            source,
            f"{key}.{sorted(unknown)[0]}",
            f"unknown key; expected one of {', '.join(sorted(_RULE_KEYS))}",
        )
    out = _rule_shape(
        rule, _rule_origin(rule, ColumnRule(), where, source, key), where, source, key
    )
    if not (
        out.paths
        or out.const is not None
        or out.file_name
        or out.rest is not None
        or out.prefix
        or out.default is not None
    ):
        raise config_error(
            where,
            source,
            key,
            "says nothing about where the value comes from (use "
            "from, const, file_name, merge, rest, prefix or default)",
        )
    return out


def _rule_origin(rule: dict, out: ColumnRule, where: str, source: str, key: str) -> ColumnRule:
    """Where the value comes from: from, merge, fallback, default, const, file_name, rest,
    prefix."""
    if "from" in rule:
        out = replace(out, paths=_paths(rule["from"], where, source, f"{key}.from"))
    if "merge" in rule:
        out = replace(out, paths=_paths(rule["merge"], where, source, f"{key}.merge"), merge=True)
    if "fallback" in rule:
        if "from" not in rule:
            raise config_error(where, source, f"{key}.fallback", "needs `from` (tried first)")
        out = replace(out, fallback=_paths(rule["fallback"], where, source, f"{key}.fallback"))
    for name in ("default", "const"):
        if name in rule:
            out = replace(out, **{name: None if rule[name] is None else str(rule[name])})
    if "file_name" in rule:
        if not isinstance(rule["file_name"], dict):
            raise config_error(
                where, source, f"{key}.file_name", "expected a mapping glob -> value"
            )
        out = replace(out, file_name=tuple((str(k), str(v)) for k, v in rule["file_name"].items()))
    if "rest" in rule:
        spec = rule["rest"]
        if spec is True:
            spec = {}
        if not isinstance(spec, dict) or set(spec) - {"exclude", "exclude_prefixes"}:
            raise config_error(
                where,
                source,
                f"{key}.rest",
                "expected true or {exclude: [...], exclude_prefixes: [...]}",
            )
        out = replace(
            out,
            rest=tuple(str_list(spec.get("exclude", []), where, source, key)),
            rest_exclude_prefixes=tuple(
                str_list(spec.get("exclude_prefixes", []), where, source, key)
            ),
        )
    if "prefix" in rule:
        if not isinstance(rule["prefix"], str) or not rule["prefix"]:
            raise config_error(
                where, source, f"{key}.prefix", "expected a key prefix such as context_"
            )
        out = replace(out, prefix=rule["prefix"])
    return out


def _rule_shape(rule: dict, out: ColumnRule, where: str, source: str, key: str) -> ColumnRule:
    """How the value is shaped: format, case, map, divide_by, minor_units, size_bucket."""
    if "format" in rule:
        formats = tuple(str_list(rule["format"], where, source, f"{key}.format"))
        for fmt in formats:
            if fmt not in TS_FORMATS and "%" not in fmt:
                raise config_error(
                    where,
                    source,
                    f"{key}.format",
                    f"{fmt!r}; expected one of "
                    f"{', '.join(TS_FORMATS)} or a strptime pattern such as %m/%d/%Y %H:%M",
                )
        out = replace(out, formats=formats)
    if "case" in rule:
        if rule["case"] not in ("upper", "lower"):
            raise config_error(
                where, source, f"{key}.case", f"{rule['case']!r}; expected upper or lower"
            )
        out = replace(out, case=rule["case"])
    if "map" in rule:
        if not isinstance(rule["map"], dict):
            raise config_error(where, source, f"{key}.map", "expected a mapping value -> value")
        out = replace(out, value_map=tuple((str(k), str(v)) for k, v in rule["map"].items()))
    if "divide_by" in rule:
        if not isinstance(rule["divide_by"], (int, float)) or not rule["divide_by"]:
            raise config_error(where, source, f"{key}.divide_by", "expected a non-zero number")
        out = replace(out, divide_by=float(rule["divide_by"]))
    for name in ("minor_units", "size_bucket"):
        if name in rule:
            if not isinstance(rule[name], bool):
                raise config_error(where, source, f"{key}.{name}", "expected true or false")
            out = replace(out, **{name: rule[name]})
    return out


def parse_identity(raw: Any, where: str, source: str, table: str) -> Identity:
    if raw is None:
        return Identity()
    if not isinstance(raw, dict) or set(raw) - {"match_by", "email", "external_id"}:
        raise config_error(
            where,
            source,
            "identity",
            "expected {match_by: email, email: <column>, external_id: <column>}",
        )
    if table == "events":
        raise config_error(
            where,
            source,
            "identity",
            "identity matching is for CRM and billing "
            "records (events are the product users it matches against)",
        )
    match_by = raw.get("match_by")
    if match_by not in (None, "email"):
        raise config_error(where, source, "identity.match_by", f"{match_by!r}; expected email")
    email = _paths(raw["email"], where, source, "identity.email") if "email" in raw else ()
    external = (
        _paths(raw["external_id"], where, source, "identity.external_id")
        if "external_id" in raw
        else ()
    )
    return Identity(match_by, email, external)
