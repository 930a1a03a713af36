"""The `attributes:` block of sources.yml: declared types reach dbt's vars, the contract's
feature columns and the model inputs; a bad entry fails naming the file and the entry."""

from __future__ import annotations

import argparse
import json
import re
from datetime import date

import duckdb
import pytest

from contracts import marts
from contracts.attributes import BAD_VALUE_REASON, QUARANTINE_TABLE, CustomAttribute
from expectations.quarantine import quarantine_summary
from orchestration.model_inputs import model_features
from orchestration.run_window import dbt_vars
from orchestration.settings import Settings
from orchestration.sources.attribute_values import record_bad_attribute_values
from orchestration.sources.mapping_rules import MappingError
from orchestration.sources.mappings import declared_attributes, parse_config
from orchestration.sources.raw_write import ensure_raw_schema

SOURCES = {"sources": {"events": "segment_s3"}}
D1, D2 = "2025-03-03", "2025-03-04"


def _attributes(entries):
    return parse_config({**SOURCES, "attributes": entries}, "landing/sources.yml").attributes


def test_declared_attributes_reach_dbt_vars_contract_and_model_inputs(tmp_path, monkeypatch):
    (tmp_path / "sources.yml").write_text(
        "sources: {events: segment_s3}\n"
        "attributes:\n  - {name: date_of_birth, type: date}\n"
        "  - {name: channel, type: category}\n  - {name: employees, type: number}\n"
    )
    monkeypatch.setenv("SEGFLOW_SOURCES_FILE", str(tmp_path / "sources.yml"))
    settings = Settings.from_env()
    assert dbt_vars(settings)["custom_attributes"] == [
        {
            "name": "date_of_birth",
            "type": "date",
            "column": "years_since_date_of_birth",
            "cast": "date",
        },
        {"name": "channel", "type": "category", "column": "channel", "cast": None},
        {"name": "employees", "type": "number", "column": "employees", "cast": "double"},
    ]
    attributes = declared_attributes(settings)
    columns = marts.feature_columns(attributes=attributes)
    assert list(columns)[-3:] == ["years_since_date_of_birth", "channel", "employees"]
    assert [columns[c] for c in list(columns)[-3:]] == ["INT", "VARCHAR", "DOUBLE"]
    assert {"years_since_date_of_birth", "channel"} <= set(
        model_features("churn", None, attributes)
    )
    assert "years_since_date_of_birth" not in marts.feature_columns()


def test_no_sources_file_declares_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGFLOW_SOURCES_FILE", raising=False)
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_DEMO_DIR", str(tmp_path))
    assert dbt_vars(Settings.from_env())["custom_attributes"] == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "birthday", "type": "datetime"}], "attributes[0]: type 'datetime'"),
        ([{"name": "Date Of Birth", "type": "date"}], "attributes[0]: name 'Date Of Birth'"),
        ([{"name": "plan", "type": "category"}], "feature column 'plan', which already exists"),
        (
            [{"name": "tier", "type": "category"}, {"name": "tier", "type": "number"}],
            "attributes[1]: 'tier' would become feature column 'tier'",
        ),
        ([{"name": "lifecycle_stage", "type": "category"}], "already a CRM / dim_users column"),
        ([{"name": "email", "type": "category"}], "'email' is already a CRM / dim_users column"),
        ([{"name": "tier"}], "attributes[0]: expected {name: <name>, type: <type>}"),
        ({"name": "tier", "type": "number"}, "`attributes:` must be a list"),
    ],
)
def test_bad_attribute_entries_fail_naming_the_file_and_entry(entries, message):
    with pytest.raises(MappingError) as err:
        _attributes(entries)
    assert str(err.value).startswith("landing/sources.yml: ")
    assert message in str(err.value)


def _contacts(conn, rows: list[tuple[str, str | None, str]]) -> None:
    """raw.crm_contacts rows (user, attributes JSON text, partition day) like the load writes."""
    ensure_raw_schema(conn)
    for line, (user, attrs, day) in enumerate(rows, start=1):
        conn.execute(
            "insert into raw.crm_contacts (user_id, updated_at, attributes, _partition_date, "
            "_loaded_at, _source, _source_file, _source_line) values "
            "(?, ?::timestamp, ?, ?::date, now(), 'files', ?, ?)",
            [user, f"{day} 10:00:00", attrs, day, f"crm/{day}.csv", line],
        )


ATTRIBUTES = (
    CustomAttribute("date_of_birth", "date"),
    CustomAttribute("employees", "number"),
    CustomAttribute("channel", "category"),
)


def test_bad_attribute_values_are_counted_and_quarantined_with_file_contact_and_value():
    conn = duckdb.connect()
    _contacts(
        conn,
        [
            ("u1", '{"date_of_birth": "1990-02-28", "employees": 12.5, "channel": "ads"}', D1),
            ("u2", '{"date_of_birth": "31/02/1990", "employees": "12,5x"}', D1),
            ("u3", '{"date_of_birth": "n/a", "channel": "31/02/1990"}', D1),
            ("u4", '{"date_of_birth": "  ", "employees": null}', D1),  # empty: not bad
            ("u5", "{not json", D1),
            ("u2", '{"date_of_birth": "1990-02-31"}', D2),  # the next CRM version: still bad
            ("u6", None, D2),
        ],
    )
    report = record_bad_attribute_values(conn, ATTRIBUTES)
    counts = {c["attribute"]: c for c in report.counts}
    assert counts["date_of_birth"]["values"] == 4
    assert counts["date_of_birth"]["bad_values"] == 3
    assert counts["date_of_birth"]["crm_versions_with_bad_value"] == 3
    assert counts["date_of_birth"]["contacts_with_bad_value"] == 2  # u2 twice, u3
    assert counts["employees"]["values"] == 2 and counts["employees"]["bad_values"] == 1
    assert counts["channel"]["bad_values"] == 0  # any text is a category
    assert counts["(all)"]["bad_values"] == 1  # u5's object is unreadable
    assert report.bad_values == 5
    rows = conn.execute(
        "select partition_date, source_file, source_line, payload, reason_code, reason_detail "
        "from raw.quarantine where table_name = ? order by source_file, source_line, payload",
        [QUARANTINE_TABLE],
    ).fetchall()
    assert {r[4] for r in rows} == {BAD_VALUE_REASON}
    by_detail = {r[5]: r for r in rows}
    detail = 'contact u2: date_of_birth is not a date (YYYY-MM-DD): "31/02/1990"'
    assert by_detail[detail][1:3] == (f"crm/{D1}.csv", 2)
    assert json.loads(by_detail[detail][3])["value"] == "31/02/1990"
    assert 'contact u2: employees is not a number (e.g. 12.5): "12,5x"' in by_detail
    assert 'contact u3: date_of_birth is not a date (YYYY-MM-DD): "n/a"' in by_detail
    assert any(d.startswith("contact u5: (all) attributes is not a JSON object") for d in by_detail)
    # the contacts themselves loaded: the row reconciliation does not count these records
    summary = quarantine_summary(conn, "raw.crm_contacts", [date.fromisoformat(D1)])
    assert summary.rows_quarantined == 0 and summary.rows_loaded == 5
    # a re-check of one day replaces that day's records only
    conn.execute("update raw.crm_contacts set attributes = '{}' where _partition_date = ?", [D2])
    again = record_bad_attribute_values(conn, ATTRIBUTES, [date.fromisoformat(D2)])
    assert again.bad_values == 0
    left = conn.execute(
        "select count(*) from raw.quarantine where table_name = ?", [QUARANTINE_TABLE]
    ).fetchone()[0]
    assert left == 4  # D1's four records stay


OVER_40 = """
  - name: over_40
    description: Forty or older (custom CRM attribute).
    rule: years_since_date_of_birth >= 40 and channel == 'partner'
    priority: 1
"""


def test_segments_check_without_a_warehouse_knows_the_declared_attributes(
    tmp_path, monkeypatch, capsys
):
    from orchestration.segments import commands

    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    monkeypatch.setenv("SEGFLOW_SOURCES_FILE", str(tmp_path / "sources.yml"))
    defaults = Settings.from_env()
    segments = tmp_path / "segments.yml"
    segments.write_text(defaults.segments_file.read_text() + OVER_40)
    args = argparse.Namespace(segments=str(segments), flows=None, triggers=None)
    (tmp_path / "sources.yml").write_text("sources: {events: segment_s3}\n")
    assert commands.check(args, Settings.from_env()) == 1  # not declared: unknown columns
    assert "years_since_date_of_birth" in capsys.readouterr().out
    (tmp_path / "sources.yml").write_text(
        "sources: {events: segment_s3}\nattributes:\n  - {name: date_of_birth, type: date}\n"
        "  - {name: channel, type: category}\n"
    )
    assert commands.check(args, Settings.from_env()) == 0
    assert "no warehouse yet" in capsys.readouterr().out


@pytest.mark.slow
def test_the_crm_load_warns_and_counts_bad_values_in_dagster(tmp_path, monkeypatch):
    """Through the real raw/crm_contacts asset: every contact loads, the WARN check names the
    attribute and the counts, the metadata counts per attribute, the quarantine lists the value."""
    import dagster as dg

    from orchestration.defs.ingest import raw_assets
    from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource

    landing = tmp_path / "landing"
    day = landing / "crm_contacts" / "dt=2025-03-03" / "contacts.jsonl"
    day.parent.mkdir(parents=True)
    births = ["1990-01-02", "31/02/1990", "n/a", "1975-12-31"]
    day.write_text(
        "".join(
            json.dumps(
                {
                    "user_id": f"u{i}",
                    "email": f"u{i}@example.com",
                    "plan": "free",
                    "signup_at": "2025-03-01T00:00:00Z",
                    "updated_at": "2025-03-03T10:00:00Z",
                    "attributes": {"date_of_birth": born, "employees": "12,5x" if i == 3 else i},
                }
            )
            + "\n"
            for i, born in enumerate(births)
        )
    )
    (landing / "sources.yml").write_text(
        "sources:\n  crm_contacts: {files: ['crm_contacts/**']}\nattributes:\n"
        "  - {name: date_of_birth, type: date}\n  - {name: employees, type: number}\n"
    )
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGFLOW_SOURCE", "files")
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(landing))
    monkeypatch.delenv("SEGFLOW_SOURCES_FILE", raising=False)
    crm = [a for a in raw_assets if dg.AssetKey(["raw", "crm_contacts"]) in a.keys]
    result = dg.materialize(
        crm,
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb")),
            "segflow": SegflowSettingsResource(),
        },
        partition_key="2025-03-03",
        instance=dg.DagsterInstance.ephemeral(),
    )
    (materialized,) = result.get_asset_materialization_events()
    metadata = materialized.materialization.metadata
    assert metadata["rows_loaded"].value == 4 and metadata["rows_quarantined"].value == 0
    assert metadata["bad_attribute_values"].value == 3
    table = metadata["attribute_values"].value  # attribute, type, values, bad_values, ...
    assert re.search(r"\| date_of_birth \| date\s+\|\s+4 \|\s+2 \|\s+2 \|\s+2 \|", table), table
    assert re.search(r"\| employees\s+\| number \|\s+4 \|\s+1 \|", table), table
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    warn = checks["custom_attribute_values"]
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    message = warn.metadata["message"].value
    assert "date_of_birth: 2 bad of 4 (2 CRM versions, 2 contacts)" in message
    assert "employees: 1 bad of 4" in message
    assert checks["quarantine_gate"].passed  # the contacts are not lost rows: the gate stays green
    conn = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        rows = conn.execute(
            "select source_file, source_line, reason_detail from raw.quarantine "
            "where table_name = ? order by source_line, reason_detail",
            [QUARANTINE_TABLE],
        ).fetchall()
    finally:
        conn.close()
    assert rows == [
        (
            "crm_contacts/dt=2025-03-03/contacts.jsonl",
            2,
            'contact u1: date_of_birth is not a date (YYYY-MM-DD): "31/02/1990"',
        ),
        (
            "crm_contacts/dt=2025-03-03/contacts.jsonl",
            3,
            'contact u2: date_of_birth is not a date (YYYY-MM-DD): "n/a"',
        ),
        (
            "crm_contacts/dt=2025-03-03/contacts.jsonl",
            4,
            'contact u3: employees is not a number (e.g. 12.5): "12,5x"',
        ),
    ]
