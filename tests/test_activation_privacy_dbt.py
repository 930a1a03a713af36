"""A delete request against a warehouse built by the real dbt project: the person is gone
from every derived table (every text column of every non-raw table and view, by id and by
e-mail), stays gone when dbt rebuilds from the redacted raw tables, and the next run's outbox
holds nothing for them, even when the source re-delivers their rows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import load_raw, run_dbt, simulate  # tests/ is on sys.path (rootdir conftest)

from orchestration.activation.destinations import OutboxDestination
from orchestration.activation.privacy import PrivacyRequest, apply_requests
from orchestration.activation.sync import SyncOptions, sync
from orchestration.segments.assign import assign_segments
from orchestration.segments.config import load_config

pytestmark = pytest.mark.slow
MODELS = ["run", "-s", "+fct_user_features", "+dim_users"]
OPTIONS = SyncOptions(max_change_share=1.0)


def _daily(db: Path, target: Path, outbox: Path, day: date) -> set[str]:
    """dbt, segments and a sync to the outbox; the person ids in this sync's outbox file."""
    run_dbt(MODELS, db, target)
    with duckdb.connect(str(db)) as conn:
        assign_segments(conn, load_config(), [day])
        report = sync(conn, OutboxDestination(outbox), as_of=day, options=OPTIONS)
    assert report.status == "ok", report.message
    return _outbox_people(report.destination_facts.get("outbox_file"))


def _outbox_people(path: str | None) -> set[str]:
    """Person ids in an outbox file (none written when nothing changed)."""
    lines = Path(path).read_text().splitlines() if path else []
    return {item["identifiers"]["id"] for line in lines for item in json.loads(line)["batch"]}


def _holders(conn: duckdb.DuckDBPyConnection, values: list[str]) -> list[str]:
    """Every `schema.table.column` outside raw (and the privacy ledger) holding one of values."""
    columns = conn.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR' and table_schema not in ('raw', 'information_schema') "
        "and table_name not like 'privacy_%'"
    ).fetchall()
    found = []
    for schema, table, column in columns:
        sql = f'select count(*) from "{schema}"."{table}" where "{column}" in (select unnest(?))'
        if conn.execute(sql, [values]).fetchone()[0]:
            found.append(f"{schema}.{table}.{column}")
    return found


def test_deleted_person_leaves_every_derived_table_and_the_next_outbox(tmp_path: Path) -> None:
    data = simulate(users=30, days=21, seed=5, start=date(2025, 3, 3))
    db, target, outbox = tmp_path / "w.duckdb", tmp_path / "target", tmp_path / "outbox"
    day = data.dates[-1]
    load_raw(db, data)
    first = _daily(db, target, outbox, day)
    with duckdb.connect(str(db)) as conn:
        victim, email = conn.execute(
            "select user_id, email from main.dim_users where user_id in "
            "(select user_id from main.user_segments where segment_date = ? "
            "and len(segments) > 0) order by user_id limit 1",
            [day],
        ).fetchone()
        assert victim in first
        assert len(_holders(conn, [victim, email])) > 5  # the scan sees them before

        apply_requests(conn, [PrivacyRequest(victim, "delete")], [], raw_policy="redact")
        assert _holders(conn, [victim, email]) == []
        raw_left = conn.execute(
            "select (select count(*) from raw.events where user_id = $v) "
            "+ (select count(*) from raw.crm_contacts where user_id = $v)",
            {"v": victim},
        ).fetchone()[0]
        assert raw_left == 0

    # next run, rebuilt by dbt from the redacted raw tables: still gone, nothing sent for them
    second = _daily(db, target, outbox, day)
    with duckdb.connect(str(db)) as conn:
        assert _holders(conn, [victim, email]) == []
    assert victim not in second

    # the source re-delivers the person's rows: dbt brings them back into the derived tables
    # (landing files must be redacted at the source), but the suppression list keeps them
    # out of every later sync
    load_raw(db, data)
    third = _daily(db, target, outbox, day)
    with duckdb.connect(str(db)) as conn:
        back = conn.execute(
            "select count(*) from main.user_segments where user_id = ? and segment_date = ?",
            [victim, day],
        ).fetchone()[0]
        sync_state = conn.execute(
            "select count(*) from main.sync_state where person_id = ?", [victim]
        ).fetchone()[0]
    # a new person to the sync (state forgot them): without the suppression they would be sent
    assert back == 1 and sync_state == 0
    assert victim not in third
