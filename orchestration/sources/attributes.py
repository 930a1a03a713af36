"""The `attributes:` block of `sources.yml`: custom typed CRM attributes (contracts.attributes),
validated with errors naming the file and the entry (`mappings.declared_attributes` reads them
back for dbt, the suites, the segment schema and the models)."""

from __future__ import annotations

from typing import Any

from contracts import marts
from contracts.attributes import (
    ATTRIBUTE_TYPES,
    DIM_USERS_OWN_COLUMNS,
    NAME_PATTERN,
    CustomAttribute,
)
from contracts.raw import CRM_CONTACTS
from orchestration.sources.mapping_rules import MappingError


def parse_attributes(raw: Any, where: str) -> tuple[CustomAttribute, ...]:
    """`attributes: [{name: date_of_birth, type: date}, ...]` -> the declared attributes."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MappingError(f"{where}: `attributes:` must be a list of {{name: ..., type: ...}}")
    taken = set(marts.feature_columns())
    dim_users = set(CRM_CONTACTS.columns) | set(DIM_USERS_OWN_COLUMNS)
    out: list[CustomAttribute] = []
    for i, item in enumerate(raw):
        key = f"{where}: attributes[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "type"}:
            raise MappingError(f"{key}: expected {{name: <name>, type: <type>}}, found {item!r}")
        name, kind = item["name"], item["type"]
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise MappingError(
                f"{key}: name {name!r} must be lower snake_case (a-z, 0-9, _; 63 characters max)"
            )
        if kind not in ATTRIBUTE_TYPES:
            raise MappingError(
                f"{key}: type {kind!r} of {name!r} is unknown; expected one of "
                f"{', '.join(ATTRIBUTE_TYPES)}"
            )
        attribute = CustomAttribute(name, kind)
        if attribute.feature_column in taken:
            raise MappingError(
                f"{key}: {name!r} would become feature column {attribute.feature_column!r}, "
                "which already exists; rename the attribute"
            )
        if name in dim_users:
            raise MappingError(
                f"{key}: {name!r} is already a CRM / dim_users column; rename the attribute"
            )
        taken.add(attribute.feature_column)
        out.append(attribute)
    return tuple(out)
