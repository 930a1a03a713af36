"""Replay of quarantined rows after their payload was fixed in place: each row is read again
through the mapping whose files it came from; rows that now pass reach `raw.<table>`."""

from __future__ import annotations

from datetime import date, datetime

import duckdb

from orchestration.sources.globs import matches
from orchestration.sources.load_report import ReplayReport
from orchestration.sources.mappings import SourceMapping, SourcesConfig, default_config
from orchestration.sources.raw_write import ensure_raw_schema, utcnow
from orchestration.sources.rules import params
from orchestration.sources.stage import create_stage, drop_stage
from orchestration.sources.tables import TableSpec, table_spec
from orchestration.sources.typed_query import typed_sql
from orchestration.sources.zones import register_zone_offsets


def _source_of(file: str, config: SourcesConfig, table: str) -> SourceMapping | None:
    """The mapping whose `files` patterns claim a landing file (zip members by their archive)."""
    path = file.split("!", 1)[0]
    for source in config.sources:
        if source.table == table and matches(path, source.files):
            return source
    return None


def replay_quarantine(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    source_name: str,
    late_arrival_days: int,
    partition_dates: list[date] | None = None,
    now: datetime | None = None,
    timestamp_floor: date | None = None,
    config: SourcesConfig | None = None,
    max_amount: float | None = None,
) -> ReplayReport:
    """Re-validate not-yet-replayed quarantined rows of `table` (after their payload was fixed
    in place, e.g. `update raw.quarantine set payload = ...`); rows that now pass are inserted
    into `raw.<table>` and marked with `replayed_at`. Rows still failing stay as they are.
    Each row is read through the mapping (sources.yml `config`) whose files it came from."""
    spec = table_spec(table)
    now = now or utcnow()
    ensure_raw_schema(conn)
    _stage_quarantined(conn, table, partition_dates)
    _type_replayed(
        conn,
        spec,
        config or default_config(),
        (now, late_arrival_days, timestamp_floor, max_amount),
    )
    rows = conn.execute(
        "select reason_code, count(*) from _segflow_replay_typed group by all"
    ).fetchall()
    _insert_replayed(conn, spec, now, source_name)
    drop_stage(conn, "_segflow_replay")
    conn.execute("drop table if exists _segflow_replay_typed")
    return ReplayReport(
        table,
        sum(n for _, n in rows),
        sum(n for code, n in rows if code is None),
        {code: n for code, n in rows if code is not None},
    )


def _stage_quarantined(conn, table: str, partition_dates: list[date] | None) -> None:
    """The not-yet-replayed quarantined rows of `table` as a stage (`_segflow_replay`), each
    with its quarantine rowid; a payload still holding U+FFFD stays bad_encoding."""
    create_stage(conn, "_segflow_replay")
    where = "table_name = $t and replayed_at is null"
    args: dict = {"t": table}
    if partition_dates is not None:
        where += " and list_contains($d, partition_date)"
        args["d"] = sorted(set(partition_dates))
    conn.execute(
        f"""insert into _segflow_replay
        select source_file, source_line, partition_date, payload,
          case when contains(payload, chr(65533)) then 'bad_encoding' end,
          case when contains(payload, chr(65533))
               then 'payload still holds undecodable bytes (U+FFFD)' end, rowid
        from raw.quarantine where {where}""",
        args,
    )


def _type_replayed(conn, spec: TableSpec, config: SourcesConfig, limits: tuple) -> None:
    """`_segflow_replay_typed`: the staged rows validated again, each file through the mapping
    it was read with. `limits`: (now, late days, timestamp floor, max amount)."""
    groups: dict[tuple, list[str]] = {}
    for (file,) in conn.execute("select distinct source_file from _segflow_replay").fetchall():
        source = _source_of(file, config, spec.name)
        name = (file.split("!", 1)[-1] if "!" in file else file).lower()
        tabular = any(s in name for s in (".csv", ".parquet"))
        groups.setdefault((source.name if source else None, tabular), []).append(file)
    verb = "create or replace temp table _segflow_replay_typed as"
    by_name = {s.name: s for s in config.sources}
    for (name, tabular), names in groups.items() or {(None, False): []}.items():
        sql = typed_sql(spec, "_segflow_replay_rows", by_name.get(name), tabular)
        sql = f"select * from ({sql}) where list_contains($replay_files, source_file)"
        register_zone_offsets(conn, sql)
        conn.execute(f"{verb} {sql}", {**params(sql, *limits), "replay_files": names})
        verb = "insert into _segflow_replay_typed"


def _insert_replayed(conn, spec: TableSpec, now: datetime, source_name: str) -> None:
    """One transaction: rows that pass now go to raw.<table>, their quarantine rows are marked
    replayed."""
    conn.execute("begin transaction")
    try:
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        conn.execute(
            f"""insert into raw.{spec.name}
            select {cols}, partition_date, $now, $source, source_file, source_line
            from _segflow_replay_typed where reason_code is null""",
            {"now": now, "source": source_name},
        )
        conn.execute(
            """update raw.quarantine set replayed_at = $now where rowid in
            (select quarantine_rowid from _segflow_replay_typed where reason_code is null)""",
            {"now": now},
        )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
