"""Raw-first writes (orchestration/sources/raw_first.py) give exactly what the typed batch table
gave: the same raw rows, quarantine rows (reason, detail, line, payload) and report counts
(per day, per file, by reason, identity, fallbacks, daylight-saving notes, unassigned rows), for
dated and undated files, all days or some; no load token is ever left in `raw.<table>._source`,
and a load that fails half-way leaves raw and quarantine as they were."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from orchestration.sources import load as load_module
from orchestration.sources.load import load_partitions
from orchestration.sources.mappings import load_config
from orchestration.sources.raw_first import TEMPS

NOW = datetime(2025, 3, 20, 12, 0)
T0 = 1740992400  # 2025-03-03 09:00:00 UTC

HUBSPOT = (
    "Record ID,Email,Create Date,Last Modified Date,Lifecycle Stage,Number of Employees\n"
    "101,Ana@Example.com,2025-01-02 10:00,2025-03-03 09:00,customer,12\n"
    "102,ben@example.com,2025-01-02 10:00,2025-03-09 02:30,lead,3\n"  # New York DST gap
    "103,cara@example.com,not a date,2025-03-04 10:00,opportunity,400\n"  # wrong_type
    ",dan@example.com,2025-01-02 10:00,2025-03-04 11:00,lead,7\n"  # null_key
    "105,eve@example.com,2025-01-02 10:00,someday,lead,7\n"  # no partition: unassigned
    "106,fay@example.com,2025-01-02 10:00,2025-11-02 01:30,customer,2000\n"  # DST overlap
    "107,gus@example.com,2025-01-02 10:00,2025-03-05 08:00,other,\n"
)
STRIPE_API = (
    "id,object,customer,customer_email,currency,amount_due,amount_paid,status,created,"
    "period_start,period_end,status_transitions.paid_at,metadata.user_id\n"
    f"in_1,invoice,cus_A,ana@example.com,usd,4900,4900,paid,{T0},{T0},{T0 + 2678400},"
    f"{T0 + 3600},u1\n"
    f"in_2,invoice,cus_B,ben@example.com,gbp,1250,1250,paid,{T0 + 86400},{T0 + 86400},"
    f"{T0 + 86400 * 32},,u2\n"  # paid_at dropped by the export: created is the fallback
    f"in_3,invoice,cus_C,cara@example.org,usd,-2900,0,open,{T0},{T0},{T0 + 2678400},,u3\n"
)


def _events(day: str) -> str:
    rows = [
        {"message_id": f"m-{day}-1", "type": "identify", "user_id": "u-ana",
         "timestamp": f"{day}T08:00:00Z", "properties": {"email": "ana@example.com"}},
        {"message_id": f"m-{day}-2", "type": "track", "event": "Signed In", "user_id": "u-ana",
         "timestamp": f"{day}T09:00:00Z"},
        {"message_id": f"m-{day}-3", "type": "track", "event": "Not In The Plan",
         "user_id": "u-ben", "timestamp": f"{day}T09:30:00Z"},
        {"message_id": f"m-{day}-2", "type": "track", "event": "Signed In", "user_id": "u-ana",
         "timestamp": f"{day}T09:00:00Z"},  # a duplicate key
    ]  # fmt: skip
    return "\n".join(json.dumps(r) for r in rows) + "\n{not json\n"


def _landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    for day in ("2025-03-03", "2025-03-04"):
        folder = landing / "events" / f"dt={day}"
        folder.mkdir(parents=True)
        (folder / "events.jsonl").write_text(_events(day))
    (landing / "hubspot").mkdir()
    (landing / "hubspot" / "contacts.csv").write_text(HUBSPOT)
    (landing / "stripe").mkdir()
    (landing / "stripe" / "invoices.csv").write_text(STRIPE_API)
    (landing / "sources.yml").write_text(
        "sources:\n"
        "  events: {files: ['events/**']}\n"
        "  crm_contacts: {preset: hubspot_contacts_csv, time_zone: America/New_York}\n"
        "  billing_invoices: {preset: stripe_invoices_api}\n"
    )
    return landing


def _load_all(conn, landing: Path, dates: list[date] | None) -> dict:
    """Every table loaded (events first: contacts match identify calls by email); what
    raw, quarantine and the reports hold afterwards."""
    config = load_config(landing)
    reports = {}
    for table in ("events", "crm_contacts", "billing_invoices"):
        r = load_partitions(conn, table, dates, landing, "files", 3, now=NOW, config=config)
        reports[table] = (
            r.partitions, r.file_counts, r.identity, r.unmatched_sample, r.fallbacks,
            r.unassigned, r.dst, sorted(r.warnings), r.mapping_errors, r.rows_per_file,
            r.preview.drop(columns="_source").to_csv(), r.quarantine_preview.to_csv(),
        )  # fmt: skip
    raw = {
        table: conn.execute(f"select * from raw.{table} order by all").fetchall()
        for table in ("events", "crm_contacts", "billing_invoices")
    }
    quarantine = conn.execute("select * from raw.quarantine order by all").fetchall()
    return {"raw": raw, "quarantine": quarantine, "reports": reports}


@pytest.mark.parametrize("dates", [None, [date(2025, 3, 4)]])
def test_raw_first_equals_the_batch_table(tmp_path: Path, monkeypatch, dates) -> None:
    landing = _landing(tmp_path)
    raw_first = _load_all(duckdb.connect(), landing, dates)
    monkeypatch.setattr(load_module, "raw_first", lambda *args: None)
    batch_table = _load_all(duckdb.connect(), landing, dates)
    assert raw_first == batch_table
    sources = {row[-3] for rows in raw_first["raw"].values() for row in rows}  # _source
    assert sources == {"files"}  # no token left behind
    # the fixture reaches what raw-first carries besides the row: every kind of note
    events, contacts, invoices = (raw_first["reports"][t] for t in raw_first["reports"])
    assert {"malformed_json", "unknown_event"} <= set(
        r for part in events[0] for r in part.quarantined_by_reason
    )
    if dates is None:
        assert contacts[6] == {"updated_at gap": 1, "updated_at overlap": 1}
        assert contacts[5] == {"hubspot/contacts.csv": {"wrong_type": 1}}  # unassigned
        assert contacts[2] == {"email": 1, "unmatched": 6}
        assert invoices[4] == {"paid_at<-fallback": 1}
        assert {"null_key", "wrong_type", "negative_amount"} <= {
            row[5] for row in raw_first["quarantine"]
        }


def test_a_failed_load_leaves_raw_and_quarantine_as_they_were(tmp_path, monkeypatch) -> None:
    landing = _landing(tmp_path)
    conn = duckdb.connect()
    before = _load_all(conn, landing, None)
    (landing / "hubspot" / "contacts.csv").write_text(HUBSPOT.replace("Ana@", "Ann@"))

    def fail(*args, **kwargs):
        raise RuntimeError("counting failed")

    monkeypatch.setattr(load_module, "partition_counts", fail)
    config = load_config(landing)
    for table in ("crm_contacts", "events"):  # undated (one transaction) and dated (per batch)
        with pytest.raises(RuntimeError, match="counting failed"):
            load_partitions(conn, table, None, landing, "files", 3, now=NOW, config=config)
    for table in ("events", "crm_contacts", "billing_invoices"):
        rows = conn.execute(f"select * from raw.{table} order by all").fetchall()
        assert rows == before["raw"][table]
    assert (
        conn.execute("select * from raw.quarantine order by all").fetchall() == before["quarantine"]
    )
    monkeypatch.undo()  # the next load works on the same connection
    report = load_partitions(
        conn, "crm_contacts", None, landing, "files", 3, now=NOW, config=config
    )
    assert report.rows_loaded == sum(p.rows_loaded for p in before["reports"]["crm_contacts"][0])
    emails = "select email from raw.crm_contacts where email like 'a%' order by all"
    assert conn.execute(emails).fetchall() == [("ann@example.com",)]


def test_leftover_temp_tables_and_views_are_dropped(tmp_path: Path) -> None:
    """A failed load may leave its temp objects, of either kind, on the connection: the next
    load drops them (a name this load makes a view, left as a table, would stop it) and
    leaves none of its own."""
    landing = _landing(tmp_path)
    fresh = _load_all(duckdb.connect(), landing, None)
    conn = duckdb.connect()
    conn.execute("create temp table _segflow_undated (a int)")
    conn.execute("create temp view _segflow_keys as select 1 as a")
    conn.execute("create temp view _segflow_bad_stage as select 1 as a")
    conn.execute("create temp table mine (a int)")  # not the load's: kept
    assert _load_all(conn, landing, None) == fresh
    temps = "select table_name from information_schema.tables where table_catalog = 'temp'"
    left = {name for (name,) in conn.execute(temps).fetchall()}
    assert "mine" in left
    assert not left & set(TEMPS)


def _many_rows(tmp_path: Path) -> Path:
    """Enough rows that the report's samples (20 rows) are a choice: three dated event files
    (the first lines of each quarantined or duplicated), and an undated contacts export whose
    rows fall on several days, in an order unlike the days'."""
    landing = tmp_path / "many"
    for day in ("2025-03-03", "2025-03-04", "2025-03-05"):
        for part in ("a", "b"):
            rows = [
                {"message_id": f"m-{day}-{part}-{i}", "type": "track", "event": "Signed In",
                 "user_id": f"u{i}", "timestamp": f"{day}T{i % 24:02d}:00:00Z"}
                for i in range(30)
            ]  # fmt: skip
            for i in range(0, 8, 3):
                rows[i]["event"] = "Not In The Plan"  # quarantined: the preview skips them
            folder = landing / "events" / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{part}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    lines = ["Record ID,Email,Create Date,Last Modified Date,Lifecycle Stage"]
    for i in range(60):
        day = ("2025-03-05", "2025-03-03", "2025-03-04")[i % 3]
        lines.append(f"{200 + i},p{i}@example.com,2025-01-02 10:00,{day} 09:00,lead")
    (landing / "hubspot").mkdir()
    (landing / "hubspot" / "contacts.csv").write_text("\n".join(lines) + "\n")
    (landing / "sources.yml").write_text(
        "sources:\n  events: {files: ['events/**']}\n"
        "  crm_contacts: {preset: hubspot_contacts_csv, time_zone: America/New_York}\n"
    )
    return landing


@pytest.mark.parametrize("dates", [None, [date(2025, 3, 4), date(2025, 3, 5)]])
def test_samples_read_up_to_their_line_bound_equal_the_full_scan(tmp_path, monkeypatch, dates):
    """The preview and the unmatched-identity sample read raw only up to the first-line bound
    of this load's groups: the same rows as ordering all of them, over several batches."""
    landing = _many_rows(tmp_path)
    monkeypatch.setattr(load_module, "BATCH_BYTES", 1)  # a batch per day
    conn = duckdb.connect()
    config = load_config(landing)
    for table in ("events", "crm_contacts"):
        # an earlier load of other days: raw holds rows outside this load's groups
        load_partitions(conn, table, [date(2025, 3, 3)], landing, "files", 3, now=NOW,
                        config=config)  # fmt: skip
        r = load_partitions(conn, table, dates, landing, "files", 3, now=NOW, config=config)
        days = dates or [date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)]
        full = conn.execute(
            f"select * from raw.{table} where list_contains($d, _partition_date) "
            "order by _partition_date, _source_file, _source_line limit 20",
            {"d": days},
        ).df()
        assert len(r.preview) == 20
        assert r.preview.to_csv() == full.to_csv()
        if table == "crm_contacts":  # no identify calls: every row is unmatched
            lines = conn.execute(
                "select _source_file, _source_line, user_id from raw.crm_contacts "
                "where list_contains($d, _partition_date) order by 1, 2 limit 20",
                {"d": days},
            ).fetchall()
            assert r.unmatched_sample == lines
