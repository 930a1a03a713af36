"""The loader's view of the raw contracts (contracts/raw.py): per raw table the column kinds,
required and key columns, date columns and accepted input names, plus the error every reader
raises for a file or setting it cannot use at all."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contracts.raw import RAW, RawTable


class SourceError(Exception):
    """A landing file or setting that cannot be used at all; names the file (and line/column
    when known) and what was expected."""

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file, self.line, self.column = file, line, column


@dataclass(frozen=True)
class TableSpec:
    """Contract of one raw table: column kinds, required columns, key and date columns."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (name, kind) kind: str | ts | num | json
    required: tuple[str, ...]  # must be present (header / field)
    keys: tuple[str, ...]  # null -> null_key
    date_columns: tuple[str, ...]  # undated files: first non-null decides the day
    future_checked: tuple[str, ...]  # timestamps that must not lie in the future
    unique_key: str | None = None  # duplicates counted (not removed) in the report
    extra_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def aliases(self, column: str) -> tuple[str, ...]:
        """Accepted input keys for a contract column, in priority order (snake, camelCase, extra)."""
        names = [column, to_camel(column), *self.extra_aliases.get(column, ())]
        return tuple(dict.fromkeys(names))

    @property
    def known_keys(self) -> frozenset[str]:
        return frozenset(a for c in self.column_names for a in self.aliases(c))


# Contract type -> the loader's column kind. Everything else (columns, required fields, keys,
# dates, aliases) is the raw contract in contracts/raw.py, which the quality suites read too.
_KINDS = {"VARCHAR": "str", "TIMESTAMP": "ts", "DOUBLE": "num", "JSON": "json"}


def _loader_spec(table: RawTable) -> TableSpec:
    return TableSpec(
        table.name,
        tuple((name, _KINDS[kind]) for name, kind in table.columns.items()),
        required=table.required,
        keys=table.keys,
        date_columns=table.date_columns,
        future_checked=table.future_checked,
        unique_key=table.unique_key,
        extra_aliases=dict(table.extra_aliases),
    )


TABLES: dict[str, TableSpec] = {name: _loader_spec(table) for name, table in RAW.items()}


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_snake(name: str) -> str:
    name = name.strip().lstrip("\ufeff")
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def table_spec(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise SourceError(
            f"unknown raw table {table!r}; expected one of {', '.join(TABLES)}"
        ) from None
