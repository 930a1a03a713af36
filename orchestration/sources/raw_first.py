"""Raw-first writes: the typed rows go straight into `raw.<table>` (one write of every row) instead
of a typed batch table that is then copied into raw (two writes; the copy was a third of a CSV
load). Used when a load's files are all dated or all undated (`load.load_partitions`); a mix of
both keeps the batch table.

Each row is inserted with a code in the high bits of `_source_line` (line + code << 40) that
marks it as this load's and carries what the report needs beyond the row: its identity match,
whether it failed a rule (or has no partition), and whether it has fallback / daylight-saving
notes, which a row that has them keeps in `_source` (a token naming this load; every other row
gets the source's name at once). Integer codes are grouped and cleared at half the cost of
string tokens. Right after each insert the rows are counted by group (one scan), and the
failing rows (few, as a rule) are typed again from the stage, with reason, detail and
payload, into a small table, and deleted from raw. The temp view `<target>` then shows the same
columns the batch table had (rows from raw with the code decoded, plus the failing rows).
Everything happens inside one transaction that ends with `untokenize` (lines and sources
restored), so no code is ever committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

from orchestration.sources.diagnostics import READER_PROBLEMS
from orchestration.sources.tables import TableSpec
from orchestration.sources.zones import register_zone_offsets

FIRST_LINES = 20  # rows in the report's samples (preview, unmatched identities)

SHIFT = 40  # a source line is below 2**40; this load's rows carry a code above it
MINE = 1 << SHIFT
LINE = MINE - 1  # mask: the line itself
IDENTITIES = ("email", "external_id", "unmatched")  # code bits 0-1 (3: no identity chain)
BAD, NOTES = 4, 8  # code bits: failed a rule or has no partition; has fallback / DST notes


def _code() -> str:
    """SQL over the typed query's output: the row's code (1 + identity + BAD + NOTES)."""
    ids = " ".join(f"when '{k}' then {i}" for i, k in enumerate(IDENTITIES))
    return (
        f"(1 + case _identity {ids} else 3 end"
        f" + case when reason_code is not null or partition_date is null then {BAD} else 0 end"
        f" + case when _fallback is null and _dst is null then 0 else {NOTES} end)"
    )


def _decoded_identity(code: str) -> str:
    """SQL: `_identity` from a code expression."""
    whens = " ".join(f"when {i} then '{k}'" for i, k in enumerate(IDENTITIES))
    return f"case ({code} - 1) & 3 {whens} end"


class RawFirst:
    """The raw-first writes of one load of `spec` from source `source_name`."""

    def __init__(self, spec: TableSpec, source_name: str) -> None:
        self.spec, self.source_name = spec, source_name
        # '~' sorts after every letter and digit: the rows with notes are found by a range
        self.prefix = "~" + uuid.uuid4().hex[:7]
        self.bad_table = "_segflow_bad"
        self.has_bad = False
        self.first_keys: list[tuple] = []  # (day, file, first lines) of every batch's groups
        self.groups: list[dict] = []  # this batch's raw rows by group (`_summarise`)

    @property
    def mine(self) -> str:
        """SQL: the raw rows this load wrote (a range test, so zone maps prune old rows)."""
        return f"(_source_line >= {MINE})"

    def _notes(self, column: str) -> str:
        """SQL: `_fallback` (`column` 2) or `_dst` (3) of a raw row of this load."""
        token = f"_source >= '{self.prefix}' and _source < '{self.prefix}~'"
        part = 2 if column == "_fallback" else 3
        return f"case when {token} then nullif(split_part(_source, '|', {part}), '') end"

    def _source(self) -> str:
        """SQL over the typed query's output: the source's name, or for a row with notes a
        token that names this load and keeps them ('<prefix>|fallback|dst')."""
        name = "'" + self.source_name.replace("'", "''") + "'"
        return (
            f"case when _fallback is null and _dst is null then {name} else '{self.prefix}|' "
            "|| coalesce(_fallback, '') || '|' || coalesce(_dst, '') end"
        )

    def write(
        self,
        conn: duckdb.DuckDBPyConnection,
        sql: str,
        rebuild: Callable[[str], str],
        stage: str,
        params_of: Callable[[str], dict],
    ) -> None:
        """Insert the typed rows of `sql` (over `stage`) into raw, count their groups
        (`_summarise`), then move the failing ones to the bad table: `rebuild(view)` is the same typed
        query over a view of just their stage rows."""
        cols = ", ".join(f'"{c}"' for c in self.spec.column_names)
        meta = "_partition_date, _loaded_at, _source, _source_file, _source_line"
        stmt = f"""insert into raw.{self.spec.name} ({cols}, {meta})
            select {cols}, partition_date, $now::timestamp, {self._source()}, source_file,
                   source_line + ({_code()}::bigint << {SHIFT})
            from ({sql})"""
        register_zone_offsets(conn, stmt)
        with unordered_insert(conn):
            conn.execute(stmt, params_of(stmt))
        self._summarise(conn)
        if not any(g["bad"] for g in self.groups):
            return
        bad = f"{self.mine} and ((_source_line >> {SHIFT}) - 1) & {BAD} = {BAD}"
        conn.execute(f"""create or replace temp view _segflow_bad_stage as
            select s.* from {stage} s semi join (
              select _source_file as f, _source_line & {LINE} as l
              from raw.{self.spec.name} where {bad}
            ) b on s.source_file = b.f and s.source_line = b.l""")
        again = rebuild("_segflow_bad_stage")
        verb = (
            f"insert into {self.bad_table}"
            if self.has_bad
            else f"create or replace temp table {self.bad_table} as"
        )
        conn.execute(f"{verb} {again}", params_of(again))
        conn.execute("drop view _segflow_bad_stage")
        conn.execute(f"delete from raw.{self.spec.name} where {bad}")
        self.groups = [g for g in self.groups if not g["bad"]]
        self.has_bad = True

    def _summarise(self, conn: duckdb.DuckDBPyConnection) -> None:
        """`groups`: this load's raw rows by (day, file, code), the code decoded (`_identity`,
        `bad`, and for rows with notes `_fallback` / `_dst`, then also grouped by `_source`),
        each column's non-null count `n_<column>` and the group's first source lines
        `first_lines`. One scan of raw (a second, by `_source`, only when a row has notes),
        kept in Python: the counts, the empty-column check and the samples' bounds read it."""
        self.groups = self._groups(conn, by_source=False)
        if any(g["notes"] for g in self.groups):
            self.groups = self._groups(conn, by_source=True)

    def _groups(self, conn: duckdb.DuckDBPyConnection, by_source: bool) -> list[dict]:
        filled = ", ".join(f'count("{c}") as "n_{c}"' for c in self.spec.column_names)
        result = conn.execute(f"""select _partition_date as partition_date,
              _source_file as source_file, _source_line >> {SHIFT} as code,
              {"_source" if by_source else "null::varchar as _source"}, count(*) as n,
              {filled}, arg_min(_source_line & {LINE}, _source_line, {FIRST_LINES}) as first_lines
            from raw.{self.spec.name} where {self.mine} group by all""")
        names = [d[0] for d in result.description]
        groups = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        for g in groups:
            bits = g["code"] - 1
            g["_identity"] = (*IDENTITIES, None)[bits & 3]
            g["bad"], g["notes"] = bool(bits & BAD), bool(bits & NOTES)
            token = g.pop("_source")
            notes = token.split("|") if g["notes"] and token else ["", "", ""]
            g["_fallback"], g["_dst"] = notes[1] or None, notes[2] or None
        return groups

    def grouped(self, conn: duckdb.DuckDBPyConnection, keep: Callable[[object], bool]) -> list:
        """`raw_write.grouped_counts` of this load's rows whose partition date `keep` accepts:
        the raw rows' from `groups`, the bad table's counted (a small table)."""
        out = [
            (g["partition_date"], g["source_file"], None, g["_identity"], g["_fallback"],
             g["_dst"], g["n"])
            for g in self.groups
            if keep(g["partition_date"])
        ]  # fmt: skip
        if self.has_bad:
            out += [
                g
                for g in conn.execute(
                    "select partition_date, source_file, reason_code, _identity, _fallback, "
                    f"_dst, count(*) from {self.bad_table} group by all"
                ).fetchall()
                if keep(g[0])
            ]
        return out

    def column_counts(self, conn: duckdb.DuckDBPyConnection, files: list[str]) -> list[tuple]:
        """(file, rows, non-null count of each contract column) of this load's rows from
        `files` that the reader could read (`groups`, and the bad table's rows but for reader
        problems), by file: what `diagnostics.empty_columns` checks."""
        cols = self.spec.column_names
        totals: dict[str, list[int]] = {}
        for g in self.groups:
            if g["source_file"] in files:
                into = totals.setdefault(g["source_file"], [0] * (len(cols) + 1))
                for i, n in enumerate([g["n"], *(g[f"n_{c}"] for c in cols)]):
                    into[i] += n
        if self.has_bad:
            rows = conn.execute(
                f"""select source_file, count(*), {", ".join(f'count("{c}")' for c in cols)}
                from {self.bad_table} where list_contains($files, source_file)
                  and not list_contains($problems, coalesce(reason_code, '')) group by 1""",
                {"files": files, "problems": list(READER_PROBLEMS)},
            ).fetchall()
            for file, *counts in rows:
                into = totals.setdefault(file, [0] * (len(cols) + 1))
                for i, n in enumerate(counts):
                    into[i] += n
        return [(file, *counts) for file, counts in sorted(totals.items())]

    def create_view(self, conn: duckdb.DuckDBPyConnection, target: str) -> None:
        """`target`: the batch table's columns over this load's raw rows and the bad table.
        Only its failing rows (quarantine) and its keys (duplicate counts) are read from it,
        the rest from `groups`: without either there is no view to plan."""
        if not (self.has_bad or self.spec.unique_key):
            return
        cols = ", ".join(f'"{c}"' for c in self.spec.column_names)
        code = f"(_source_line >> {SHIFT})"
        rows = f"""select _source_file as source_file, _source_line & {LINE} as source_line,
              _partition_date as partition_date, null::bigint as quarantine_rowid, {cols},
              null::varchar as reason_code, null::varchar as reason_detail,
              _partition_date as derived_date, null::varchar as payload,
              {_decoded_identity(code)} as _identity, {self._notes("_fallback")} as _fallback,
              {self._notes("_dst")} as _dst
            from raw.{self.spec.name} where {self.mine}"""
        if self.has_bad:
            rows += f" union all by name select * from {self.bad_table}"
        conn.execute(f"create or replace temp view {target} as {rows}")

    def unmatched_sql(self, where: str, counted: list[tuple]) -> str:
        """SQL: (source_file, source_line, user_id) of this load's rows whose identity matched
        nothing, among those matching `where` (over the view's names; `counted`: their
        `grouped` counts), enough for the first FIRST_LINES by file and line: raw rows found by
        their code (a range, not decoding every row) up to the line of the last of those
        first rows (each group keeps its first lines, and a row sampled is
        among its group's first: zone maps skip the rest of raw)."""
        parts = {(day, file) for day, file, *_ in counted}
        first = sorted(
            (g["source_file"], line)
            for g in self.groups
            if g["_identity"] == "unmatched" and (g["partition_date"], g["source_file"]) in parts
            for line in g["first_lines"]
        )[:FIRST_LINES]
        bound = max((line for _, line in first), default=0)
        # the raw rows left are not bad: an unmatched row's code is one of two, each a range
        unmatched = 1 + IDENTITIES.index("unmatched")
        ranges = " or ".join(
            f"_source_line between {c << SHIFT} and {(c << SHIFT) + bound}"
            for c in (unmatched, unmatched + NOTES)
        )
        rows = f"""select _source_file as source_file, _source_line & {LINE} as source_line,
              user_id, _partition_date as partition_date
            from raw.{self.spec.name} where {ranges}"""
        if self.has_bad:
            rows += f""" union all select source_file, source_line, user_id, partition_date
                from {self.bad_table} where _identity = 'unmatched'"""
        return f"select source_file, source_line, user_id from ({rows}) where {where}"

    def discard_other_days(self, conn: duckdb.DuckDBPyConnection, days: list) -> None:
        """Drop from raw this load's rows dated outside `days` (undated files read for some
        days: every row was typed and checked, as the file's diagnostics count them all)."""
        conn.execute(
            f"delete from raw.{self.spec.name} where {self.mine} and _partition_date is not null "
            "and not list_contains($days, _partition_date)",
            {"days": days},
        )
        self.groups = [
            g for g in self.groups if g["partition_date"] is None or g["partition_date"] in days
        ]

    def keep_old(self) -> str:
        """SQL: a raw row not written by this load (what replacing a partition deletes)."""
        return f"not coalesce({self.mine}, false)"

    def untokenize(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Every row of this load gets its line (and a row with notes its source's name) back;
        the first lines of its groups are kept for the preview's bound (`preview_bound`)."""
        self.first_keys += [
            (g["partition_date"], g["source_file"], g["first_lines"]) for g in self.groups
        ]
        conn.execute(
            f"update raw.{self.spec.name} set _source_line = _source_line & {LINE} "
            f"where {self.mine}"
        )
        if any(g["notes"] for g in self.groups):
            conn.execute(
                f"update raw.{self.spec.name} set _source = $s "
                f"where _source >= '{self.prefix}' and _source < '{self.prefix}~'",
                {"s": self.source_name},
            )
        self.groups = []  # untokenized: the next batch counts its own

    def preview_bound(self) -> int | None:
        """The largest source line among the first FIRST_LINES rows this load left in raw,
        ordered by (day, file, line): the preview (over this load's days, which hold only its
        rows) reads no row past it. None: no row."""
        keys = sorted((day, file, line) for day, file, lines in self.first_keys for line in lines)[
            :FIRST_LINES
        ]
        return max((line for *_, line in keys), default=None)

    def reset(self, conn: duckdb.DuckDBPyConnection) -> None:
        """A new batch: no bad rows yet."""
        conn.execute(f"drop table if exists {self.bad_table}")
        self.has_bad = False


@contextmanager
def unordered_insert(conn) -> Iterator[None]:
    """The block's inserts may store rows in any order: every reader of raw orders by its
    lineage (`_source_file`, `_source_line`), and keeping the input's order costs a fifth of
    a raw-first insert (DuckDB merges the threads' row groups in order). The session then
    takes the database's setting again."""
    conn.execute("set session preserve_insertion_order = false")
    try:
        yield
    finally:
        conn.execute("reset session preserve_insertion_order")


@contextmanager
def transaction(conn, active: bool) -> Iterator[None]:
    """One transaction around the block when `active` (rolled back on any error)."""
    if not active:
        yield
        return
    conn.execute("begin transaction")
    try:
        yield
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


TEMPS = (
    "_segflow_typed",
    "_segflow_undated",
    "_segflow_bad",
    "_segflow_bad_stage",
    "_segflow_keys",
)


def drop_temps(conn) -> None:
    """Drop the load's temp tables and views that exist (a failed earlier load may have left
    either): one catalog read instead of a drop per name and kind (duckdb_tables() and
    duckdb_views() of the temp catalog: half of information_schema.tables' cost; unfiltered,
    duckdb_views() lists the built-in views too)."""
    found = conn.execute(
        "select 'TABLE', table_name from duckdb_tables() where database_name = 'temp' "
        "union all select 'VIEW', view_name from duckdb_views() where database_name = 'temp'"
    ).fetchall()
    for kind, name in found:
        if name in TEMPS:
            conn.execute(f"drop {'view' if kind == 'VIEW' else 'table'} if exists {name}")
