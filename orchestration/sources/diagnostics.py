"""Mappings that give nothing, said out loud (issue 21): after a group of files is typed, every
contract column that came out empty in all of a file's rows is reported.

- A column listed under `columns:` whose source matched nothing in a file is a warning (dry run
  and metadata); when it feeds a required column or money (amount, currency) it is an
  error that blocks the load's verdict.
- A contract column the `columns:` block does not list is read from a header / key of the same
  name when the file has one (never nulled in silence); when the file has none it is reported
  as dropped.
"""

from __future__ import annotations

import duckdb

from contracts.raw import RAW

# paid_at is not here: a file of open invoices has none (a paid one without is quarantined)
MONEY = {"billing_invoices": ("amount", "currency")}
READER_PROBLEMS = ("malformed_json", "malformed_csv", "bad_encoding")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def empty_columns(
    conn: duckdb.DuckDBPyConnection, target: str, table: str, source, files: list[str], rf=None
) -> tuple[list[str], list[str]]:
    """(warnings, errors) for the typed rows of `files` in `target`, read through `source`
    (raw-first `rf`: from its counted groups, `RawFirst.column_counts`, instead of every row)."""
    if source is None or source.default_columns or not files:
        return [], []
    columns = list(RAW[table].columns)
    counts = (
        rf.column_counts(conn, files)
        if rf is not None
        else conn.execute(
            "select source_file, count(*), "
            + ", ".join(f"count({_quoted(c)})" for c in columns)
            + f" from {target} where list_contains($files, source_file) and not "
            "list_contains($problems, coalesce(reason_code, '')) group by 1 order by 1",
            {"files": files, "problems": list(READER_PROBLEMS)},
        ).fetchall()
    )
    strict = set(RAW[table].required) | set(MONEY.get(table, ()))
    warnings, errors = [], []
    for file, rows, *filled in counts:
        for col, n in zip(columns, filled, strict=True):
            if n or not rows:
                continue
            rule = source.columns.get(col)
            if rule is None:
                warnings.append(
                    f"{file}: {table}.{col} dropped: not listed under `columns:` of source "
                    f"{source.name!r} and the file has no field {col!r} ({rows} rows null)"
                )
                continue
            if not rule.paths:
                continue  # a const / file_name / default rule: its value is what it is
            wanted = " or ".join("`" + ".".join(p) + "`" for p in rule.paths)
            message = (
                f"{file}: columns.{col} of source {source.name!r} ({wanted}) matched no value "
                f"in any of its {rows} rows"
            )
            if col in strict and rule.default is None:
                errors.append(message + f" ({col} is required or money)")
            else:
                warnings.append(message)
    return warnings, errors
