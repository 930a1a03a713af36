"""Cased copies of CSV columns: a `case: lower` / `upper` rule that reads header columns as they
are is applied by the CSV reader with Arrow's ASCII kernels when the file is ASCII (one pass over a
column's buffer; DuckDB's `lower` cost ~0.03 CPU s per column per 1M rows), as `l_<name>` /
`u_<name>` beside the text columns, which stay as they are for the quarantine payload. The
validation query (`compiler.Compiler.cased_base`) then reads the copies instead of casing."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from orchestration.sources.mapping_rules import ColumnRule
from orchestration.sources.mappings import SourceMapping
from orchestration.sources.tables import TableSpec, to_snake

CASED_PREFIX = {"lower": "l_", "upper": "u_"}  # a direct stage's cased copy of a column


def cased_plain(rule: ColumnRule) -> bool:
    """A `case:` rule that reads its text from header columns as they are (no const, file
    name, merge, rest or prefix; one header per path): what the CSV reader can case for it."""
    return bool(
        rule.case in CASED_PREFIX
        and rule.paths
        and all(len(p) == 1 for p in rule.paths)
        and rule.const is None
        and not rule.file_name
        and not rule.merge
        and rule.rest is None
        and not rule.prefix
    )


def cased_headers(spec: TableSpec, source: SourceMapping | None) -> dict[str, set[str]]:
    """snake header name -> the cases (`lower` / `upper`) its `cased_plain` rules apply: the
    CSV reader adds those copies when the file is ASCII (Arrow's ASCII kernels case a column's
    buffer in one pass; DuckDB's `lower` cost ~0.03 CPU s per column per 1M rows)."""
    if source is None or source.default_columns:
        return {}
    kinds = dict(spec.columns)
    out: dict[str, set[str]] = {}
    for col, rule in source.columns.items():
        if kinds.get(col, "json") != "json" and cased_plain(rule):
            for path in rule.paths:
                out.setdefault(to_snake(path[0]), set()).add(rule.case)
    return out


_ASCII_CASE = {"lower": pc.ascii_lower, "upper": pc.ascii_upper}


def add_cased(table: pa.Table, header: list[str], cased: dict[str, set[str]]) -> pa.Table:
    """The cased copies of an ASCII file's columns that `case:` rules read (ASCII casing is
    what DuckDB's `lower` / `upper` do to ASCII text); the text columns stay as they are for
    the quarantine payload."""
    for name in header:
        for case in sorted(cased.get(name, ())):
            column = _ASCII_CASE[case](table[f"d_{name}"])
            table = table.append_column(f"{CASED_PREFIX[case]}{name}", column)
    return table


def uniform_cased(tables: list[pa.Table]) -> tuple[list[pa.Table], set[str]]:
    """The direct stage tables with only the cased copies (`l_` / `u_` columns) that all of
    them have (one query reads them all: a copy one file lacks, e.g. a non-ASCII file's,
    would read as null there), and those copies' names."""
    prefixes = tuple(CASED_PREFIX.values())
    names = [{n for n in t.column_names if n.startswith(prefixes)} for t in tables]
    common = set.intersection(*names) if names else set()
    kept = [t.drop_columns(sorted(n - common)) for t, n in zip(tables, names, strict=True)]
    return kept, common
