"""Regression tests for the files source's silent cases (issue 11) and the declared mappings:
compressed files, bad `dt=` folders, symlinked folders, colliding CSV headers, numeric ids
(42 / 42.0), naive timestamps in a declared zone, screen calls, undated rows without a date,
skipped files failing the gate, mapping validation and `segflow sources check`.
All on real DuckDB, the real loader and (where said) real Dagster execution."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import zstandard

from expectations import check_quarantine
from orchestration.settings import PROJECT_ROOT
from orchestration.sources.load import SourceError, load_partitions
from orchestration.sources.mappings import MappingError, load_config, parse_config

DAY = date(2025, 3, 3)
NOW = datetime(2025, 3, 10, 12, 0)
VENDORS = Path(__file__).parent / "fixtures" / "vendors"


def _event(i: int, **overrides) -> dict:
    record = {
        "messageId": f"m-{i}",
        "type": "track",
        "event": "Signed In",
        "userId": f"u{i}",
        "timestamp": "2025-03-03T10:00:00Z",
        "properties": {},
        "context": {},
    }
    record.update(overrides)
    return record


def _lines(*events: dict) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture
def conn():
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_compressed_files_are_read_transparently(conn, tmp_path: Path) -> None:
    day = tmp_path / "events" / "dt=2025-03-03"
    _write(day / "a.jsonl.gz", gzip.compress(_lines(_event(1), _event(2))))
    _write(day / "b.jsonl.bz2", bz2.compress(_lines(_event(3))))
    _write(day / "c.jsonl.zst", zstandard.ZstdCompressor().compress(_lines(_event(4))))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("part-1.json.gz", gzip.compress(_lines(_event(5), _event(6))))
        archive.writestr("part-2.jsonl", _lines(_event(7)))
    _write(day / "d.zip", buf.getvalue())
    _write(
        tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv.gz",
        gzip.compress(
            b"user_id,email,signup_at,updated_at\nu1,a@x.org,2025-03-01T00:00:00Z,"
            b"2025-03-03T10:00:00Z\n"
        ),
    )
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert (report.rows_read, report.rows_loaded) == (7, 7)
    assert not report.skipped
    assert report.rows_per_file == {
        "events/dt=2025-03-03/a.jsonl.gz": 2,
        "events/dt=2025-03-03/b.jsonl.bz2": 1,
        "events/dt=2025-03-03/c.jsonl.zst": 1,
        "events/dt=2025-03-03/d.zip!part-1.json.gz": 2,
        "events/dt=2025-03-03/d.zip!part-2.jsonl": 1,
    }
    lines = conn.execute(
        "select _source_file, _source_line from raw.events where message_id = 'm-6'"
    ).fetchall()
    assert lines == [("events/dt=2025-03-03/d.zip!part-1.json.gz", 2)]
    crm = load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)
    assert crm.rows_loaded == 1


def test_truncated_gzip_is_an_error_naming_the_file(conn, tmp_path: Path) -> None:
    data = gzip.compress(_lines(_event(1), _event(2)))
    _write(tmp_path / "events" / "dt=2025-03-03" / "cut.jsonl.gz", data[: len(data) // 2])
    with pytest.raises(SourceError) as info:
        load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert info.value.file == "events/dt=2025-03-03/cut.jsonl.gz"
    assert "gzip" in str(info.value)


def test_unpadded_dt_folder_loads_and_impossible_dt_folder_is_reported(conn, tmp_path) -> None:
    _write(tmp_path / "events" / "dt=2025-3-3" / "a.jsonl", _lines(_event(1)))
    _write(tmp_path / "events" / "dt=2025-13-45" / "b.jsonl", _lines(_event(2)))
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.rows_loaded == 1
    assert conn.execute("select _partition_date from raw.events").fetchall() == [(DAY,)]
    (skipped,) = report.blocking_skipped
    assert skipped.relative == "events/dt=2025-13-45/b.jsonl"
    assert "dt=2025-13-45 is not a valid date" in skipped.reason
    assert any(
        "dt=2025-13-45" in row["file"] and row["status"] == "skipped"
        for row in report.per_file_rows()
    )


def test_symlinked_folders_are_followed(conn, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    _write(elsewhere / "day" / "a.jsonl", _lines(_event(1), _event(2)))
    _write(elsewhere / "extra" / "b.jsonl", _lines(_event(3)))
    _write(elsewhere / "more" / "c.jsonl", _lines(_event(4)))
    landing = tmp_path / "landing"
    (landing / "events").mkdir(parents=True)
    os.symlink(elsewhere / "day", landing / "events" / "dt=2025-03-03")
    os.symlink(elsewhere / "more", landing / "events" / "more")  # undated: rows decide
    os.symlink(elsewhere / "extra", elsewhere / "day" / "sub")  # a sub-folder link
    report = load_partitions(conn, "events", [DAY], landing, "files", 3, now=NOW)
    # a.jsonl (2) + sub/b.jsonl (1) in the dt folder; the undated link is read by its rows
    assert report.rows_loaded == 4 and not report.skipped
    files = {f for (f,) in conn.execute("select distinct _source_file from raw.events").fetchall()}
    assert files == {
        "events/dt=2025-03-03/a.jsonl",
        "events/dt=2025-03-03/sub/b.jsonl",
        "events/more/c.jsonl",
    }
    os.symlink(landing / "events", elsewhere / "more" / "loop")  # a loop: reported, not fatal
    os.symlink(elsewhere / "extra", landing / "events" / "again")  # the same folder twice
    report = load_partitions(conn, "events", [DAY], landing, "files", 3, now=NOW)
    assert report.rows_loaded == 4
    (twice,) = report.blocking_skipped  # the second path to `extra` (walk order) is reported
    assert twice.relative == "events/dt=2025-03-03/sub/" and "already read" in twice.reason
    assert any(s.relative == "events/more/loop/" and s.ignored for s in report.skipped)


def test_colliding_csv_headers_are_an_error_naming_file_and_columns(conn, tmp_path) -> None:
    _write(
        tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv",
        "user_id,email,User ID,updated_at\nu1,a@x.org,999,2025-03-03T10:00:00Z\n",
    )
    with pytest.raises(SourceError) as info:
        load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)
    assert info.value.file == "crm_contacts/dt=2025-03-03/c.csv"
    assert "'user_id', 'User ID'" in str(info.value)
    _write(
        tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv",
        "user_id,email,email,updated_at\nu1,a@x.org,b@x.org,2025-03-03T10:00:00Z\n",
    )
    with pytest.raises(SourceError, match="'email', 'email'"):
        load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)


def test_numeric_ids_are_one_canonical_string(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "events" / "dt=2025-03-03" / "a.jsonl",
        _lines(
            _event(1, userId=42),
            _event(2, userId=42.0),
            _event(3, userId="42"),
            _event(4, userId="007"),
            _event(5, userId="4.5"),
        ),
    )
    load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    users = [
        u for (u,) in conn.execute("select user_id from raw.events order by message_id").fetchall()
    ]
    assert users == ["42", "42", "42", "007", "4.5"]


def test_naive_timestamps_are_read_in_the_declared_zone(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv",
        "user_id,email,signup_at,updated_at\n"
        "u1,a@x.org,2025-03-01 09:00,2025-03-03 10:00\n"
        "u2,b@x.org,2025-03-01T09:00:00Z,2025-03-03T10:00:00+01:00\n",
    )
    _write(tmp_path / "sources.yml", "sources:\n  crm_contacts: {time_zone: America/New_York}\n")
    config = load_config(tmp_path)
    load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW, config=config)
    rows = conn.execute(
        "select user_id, signup_at, updated_at from raw.crm_contacts order by user_id"
    ).fetchall()
    assert rows == [  # zoneless: New York (UTC-5); explicit zones are kept
        ("u1", datetime(2025, 3, 1, 14, 0), datetime(2025, 3, 3, 15, 0)),
        ("u2", datetime(2025, 3, 1, 9, 0), datetime(2025, 3, 3, 9, 0)),
    ]


def test_screen_calls_are_activity_like_pages(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "events" / "dt=2025-03-03" / "a.jsonl",
        _lines(_event(1, type="screen", name="Home", event=None), _event(2, type="page")),
    )
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.rows_quarantined == 0
    assert conn.execute("select type, event from raw.events order by message_id").fetchall() == [
        ("page", "Home"),
        ("page", "Signed In"),
    ]


def test_epoch_timestamps_value_maps_and_json_paths(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "billing" / "inv.jsonl",
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {
                    "id": 7.0,
                    "cust": {"ref": 42.0},
                    "cents": 1250,
                    "cur": "usd",
                    "st": "Draft",
                    "start_ms": 1740996000000,
                    "paid_us": None,
                },
                {
                    "id": 8,
                    "cust": {"ref": 43},
                    "cents": 500,
                    "cur": "gbp",
                    "st": "PAID",
                    "start_ms": 1740996000000,
                    "paid_us": 1740999600000000,
                },
            ]
        ),
    )
    config = parse_config(
        {
            "sources": {
                "billing_invoices": {
                    "files": ["billing/**"],
                    "columns": {
                        "invoice_id": "id",
                        "user_id": "$.cust.ref",
                        "amount": {"from": "cents", "divide_by": 100},
                        "currency": {"from": "cur", "case": "upper"},
                        "status": {"from": "st", "case": "lower", "map": {"draft": "open"}},
                        "period_start": {"from": "start_ms", "format": "epoch_ms"},
                        "paid_at": {"from": "paid_us", "format": "epoch_us"},
                    },
                }
            }
        }
    )
    report = load_partitions(
        conn, "billing_invoices", [DAY], tmp_path, "files", 3, now=NOW, config=config
    )
    assert report.rows_quarantined == 0, report.quarantine_preview
    rows = conn.execute(
        "select invoice_id, user_id, amount, currency, status, period_start, "
        "paid_at from raw.billing_invoices order by 1"
    ).fetchall()
    assert rows == [
        ("7", "42", 12.5, "USD", "open", datetime(2025, 3, 3, 10, 0), None),
        ("8", "43", 5.0, "GBP", "paid", datetime(2025, 3, 3, 10, 0), datetime(2025, 3, 3, 11, 0)),
    ]


def test_unclaimed_files_are_reported_and_ignore_silences_them(conn, tmp_path: Path) -> None:
    _write(tmp_path / "events" / "dt=2025-03-03" / "a.jsonl", _lines(_event(1)))
    _write(tmp_path / "exports" / "stray.csv", "a,b\n1,2\n")
    _write(tmp_path / "events" / "dt=2025-03-03" / "notes.txt", "hello")
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    reasons = {s.relative: s.reason for s in report.blocking_skipped}
    assert set(reasons) == {"exports/stray.csv", "events/dt=2025-03-03/notes.txt"}
    assert "claimed by no source" in reasons["exports/stray.csv"]
    config = parse_config(
        {
            "ignore": ["exports/**"],
            "sources": {"events": {"files": ["events/**"], "on_skip": "ignore"}},
        }
    )
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW, config=config)
    assert report.blocking_skipped == []
    assert {s.relative for s in report.skipped} >= {"exports/stray.csv"}


def test_report_footer_lines_are_counted_not_loaded(conn) -> None:
    landing = VENDORS / "salesforce_contacts_csv" / "landing"
    report = load_partitions(
        conn, "crm_contacts", None, landing, "files", 3, now=NOW, config=load_config(landing)
    )
    assert report.footer_lines == {"salesforce/report1741158120000.csv": 6}
    assert report.rows_read == 3 and report.rows_quarantined == 0


def test_undated_rows_without_a_date_do_not_crash_the_gate(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "crm_contacts" / "contacts.csv",
        "user_id,email,updated_at\nu1,a@x.org,2025-03-03T10:00:00Z\nu2,b@x.org,soon\nu3,c@x.org,\n",
    )
    report = load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)
    rows_read = {p.partition_date: p.rows_read for p in report.partitions}
    assert rows_read == {DAY: 1, None: 2}
    # the old code raised ValueError: Invalid isoformat string: 'None'
    result = check_quarantine(conn, "raw.crm_contacts", [DAY], rows_read=rows_read)
    assert result.outcome("crm_contacts.quarantine.reconciles").passed
    assert result.outcomes[0].observed_value["rows_unassigned"] == 2
    with pytest.raises(ValueError, match="crm_contacts: rows_read has partition key 'x'"):
        check_quarantine(conn, "raw.crm_contacts", [DAY], rows_read={"x": 1})


# --- mapping validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"events": {"preset": "segmnt_s3"}}, "source 'events': key 'preset': unknown preset"),
        (
            {"crm": {"preset": "hubspot_contacts_csv", "columns": {"nickname": "Nick"}}},
            "source 'crm': key 'columns.nickname': not a column of raw.crm_contacts",
        ),
        (
            {"crm_contacts": {"time_zone": "Mars/Olympus"}},
            "source 'crm_contacts': key 'time_zone': unknown time zone",
        ),
        (
            {"events": {"columns": {"timestamp": {"from": "t", "format": "epoch_days"}}}},
            "key 'columns.timestamp.format': 'epoch_days'",
        ),
        ({"orders": {"files": ["x/**"]}}, "source 'orders': key 'table'"),
        ({"events": {"fles": ["x"]}}, "source 'events': key 'fles': unknown key"),
    ],
)
def test_invalid_mappings_name_file_source_and_key(tmp_path: Path, body, message) -> None:
    path = tmp_path / "sources.yml"
    path.write_text(json.dumps({"sources": body}))
    with pytest.raises(MappingError) as info:
        load_config(tmp_path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_code_location_load_fails_on_an_invalid_sources_file(tmp_path: Path) -> None:
    (tmp_path / "sources.yml").write_text("sources:\n  events: {preset: nope}\n")
    env = {
        **os.environ,
        "SEGFLOW_SOURCE": "files",
        "SEGFLOW_LANDING_DIR": str(tmp_path),
        "SEGFLOW_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import orchestration.defs.ingest"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "MappingError" in proc.stderr and "key 'preset': unknown preset 'nope'" in proc.stderr


# --- Dagster: a skipped file fails the blocking gate unless ignored --------------------------


def _materialize(tmp_path: Path, landing: Path, monkeypatch) -> dg.ExecuteInProcessResult:
    from orchestration.defs.ingest import raw_assets
    from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource

    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGFLOW_SOURCE", "files")
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(landing))
    events = [a for a in raw_assets if a.key == dg.AssetKey(["raw", "events"])]
    return dg.materialize(
        events,
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb")),
            "segflow": SegflowSettingsResource(),
        },
        tags={"dagster/partition": "2025-03-03"},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_skipped_file_fails_the_gate_unless_the_mapping_ignores_it(tmp_path, monkeypatch) -> None:
    landing = tmp_path / "landing"
    _write(landing / "events" / "dt=2025-03-03" / "a.jsonl", _lines(_event(1), _event(2)))
    _write(landing / "events" / "dt=2025-13-45" / "b.jsonl", _lines(_event(3)))
    result = _materialize(tmp_path, landing, monkeypatch)
    gate = [e for e in result.get_asset_check_evaluations() if e.check_name == "quarantine_gate"]
    assert len(gate) == 1 and not gate[0].passed
    assert "dt=2025-13-45" in str(gate[0].metadata["message"].value)
    assert not result.success  # blocking
    _write(landing / "sources.yml", "sources:\n  events: {on_skip: ignore}\n")
    result = _materialize(tmp_path, landing, monkeypatch)
    gate = [e for e in result.get_asset_check_evaluations() if e.check_name == "quarantine_gate"]
    assert gate[0].passed and result.success


# --- segflow sources check ---------------------------------------------------------------------


def test_sources_check_cli_prints_per_file_counts_and_writes_nothing(tmp_path, capsys) -> None:
    from orchestration.cli import main

    landing = VENDORS / "stripe_invoices_api" / "landing"
    before = sorted(p.name for p in landing.rglob("*"))
    assert main(["sources", "check", "--landing", str(landing)]) == 0
    out = capsys.readouterr().out
    assert (
        "stripe/invoices-2025-03.json: source billing_invoices (preset stripe_invoices_api): "
        "read 6, loaded 6, quarantined 0" in out
    )
    assert "identity: {'email': 2, 'external_id': 3, 'unmatched': 1}" in out
    assert sorted(p.name for p in landing.rglob("*")) == before
    bad = tmp_path / "landing"
    _write(bad / "events" / "dt=2025-13-45" / "b.jsonl", _lines(_event(3)))
    _write(bad / "events" / "dt=2025-03-03" / "a.jsonl", _lines(_event(1), _event(2, type="x")))
    assert main(["sources", "check", "--landing", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "events/dt=2025-13-45/b.jsonl: SKIPPED: folder dt=2025-13-45 is not a valid date" in out
    assert "error events/dt=2025-03-03/a.jsonl:2 unknown_event" in out


def test_replay_reads_fixed_rows_through_their_mapping(conn, tmp_path: Path) -> None:
    from orchestration.sources.load import replay_quarantine

    _write(
        tmp_path / "hubspot" / "contacts.csv",
        "Record ID,Email,Create Date,Last Modified Date\n"
        "1001,ana@example.com,2025-03-01 09:00,2025-03-03 09:30\n"
        "1002,ben@example.com,2025-03-01 09:00,2025-03-03 25:99\n",
    )
    _write(tmp_path / "sources.yml", "sources:\n  crm_contacts: {preset: hubspot_contacts_csv}\n")
    config = load_config(tmp_path)
    report = load_partitions(
        conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW, config=config
    )
    assert report.rows_loaded == 1
    assert conn.execute("select reason_code from raw.quarantine").fetchall() == [("wrong_type",)]
    conn.execute("""update raw.quarantine set payload = json_merge_patch(payload,
                    '{"last_modified_date": "2025-03-03 10:00"}')""")
    conn.execute("update raw.quarantine set partition_date = DATE '2025-03-03'")
    result = replay_quarantine(conn, "crm_contacts", "files", 3, now=NOW, config=config)
    assert result.replayed == 1
    assert conn.execute(
        "select user_id, updated_at from raw.crm_contacts order by 1"
    ).fetchall() == [("1001", datetime(2025, 3, 3, 9, 30)), ("1002", datetime(2025, 3, 3, 10, 0))]


def test_lower_case_currency_loads_without_a_mapping(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "billing_invoices" / "dt=2025-03-03" / "inv.csv",
        "invoice_id,user_id,amount,currency,status,period_start,period_end,paid_at\n"
        "i1,u1,49,usd,Paid,2025-03-03T10:00:00Z,2025-04-03T10:00:00Z,2025-03-03T10:00:00Z\n",
    )
    report = load_partitions(conn, "billing_invoices", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.rows_quarantined == 0, report.quarantine_preview
    assert conn.execute("select currency, status from raw.billing_invoices").fetchall() == [
        ("USD", "paid")
    ]


def test_segment_received_day_folder_is_the_partition(conn) -> None:
    landing = VENDORS / "segment_s3" / "landing"
    config = load_config(landing)
    report = load_partitions(
        conn, "events", [date(2025, 3, 4)], landing, "files", 3, now=NOW, config=config
    )
    # only segment-logs/<source>/1741046400000/ (2025-03-04) is read
    assert list(report.rows_per_file) == [
        "segment-logs/src_w3j/1741046400000/1741050000000.d4e5f6.gz"
    ]
    assert (report.rows_read, report.rows_loaded) == (2, 2)


def test_segment_warehouse_parquet_tables(conn, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    wh = tmp_path / "segment-warehouse"
    wh.mkdir()
    ts = pa.array([datetime(2025, 3, 3, 10), datetime(2025, 3, 3, 11)], pa.timestamp("us", "UTC"))
    pq.write_table(
        pa.table(
            {
                "id": ["t1", "t2"],
                "anonymous_id": ["a1", None],
                "user_id": [42.0, 43.0],
                "event": ["project_created", "signed_in"],
                "event_text": ["Project Created", "Signed In"],
                "timestamp": ts,
                "received_at": ts,
                "context_library_name": ["analytics.js"] * 2,
                "plan": ["pro", None],
            }
        ),
        wh / "tracks.parquet",
    )
    config = parse_config({"sources": {"events": {"preset": "segment_warehouse"}}})
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW, config=config)
    assert report.rows_quarantined == 0, report.quarantine_preview
    rows = conn.execute(
        "select message_id, type, event, user_id, timestamp, properties, context "
        "from raw.events order by 1"
    ).fetchall()
    assert rows == [
        (
            "t1",
            "track",
            "Project Created",
            "42",
            datetime(2025, 3, 3, 10),
            '{"plan":"pro"}',
            '{"library_name":"analytics.js"}',
        ),
        (
            "t2",
            "track",
            "Signed In",
            "43",
            datetime(2025, 3, 3, 11),
            "{}",
            '{"library_name":"analytics.js"}',
        ),
    ]


def test_every_timestamp_branch_of_a_zoned_format_list(conn, tmp_path: Path) -> None:
    """ISO with Z, ISO with an offset (also with a space before it, which only the formats
    read), zoneless ISO, and each declared format, with and without a trailing Z: read as
    the declared zone says (a format without %z is a wall time in America/New_York)."""
    from zoneinfo import ZoneInfo

    values = {
        "u1": "2025-03-01T09:00:00Z",  # ISO, UTC
        "u2": "2025-03-01T09:00:00+01:00",  # ISO with an offset
        "u3": "2025-03-01 09:00",  # zoneless ISO: a New York wall time
        "u4": "01/03/2025 09:00",  # the second format
        "u5": "01/03/2025 09:00Z",  # ends in Z, not ISO: the third format's wall time
        "u6": "2025-03-01 09:00:00 +05:00",  # an offset after a space: not ISO with a zone
        "u7": "2024-07-01 09:00",  # summer: UTC-4
    }
    _write(
        tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv",
        "user_id,email,signup_at,updated_at\n"
        + "".join(f"{k},{k}@x.org,{v},2025-03-03 10:00\n" for k, v in values.items()),
    )
    _write(
        tmp_path / "sources.yml",
        "sources:\n  crm_contacts:\n    time_zone: America/New_York\n    columns:\n"
        "      user_id: {from: user_id}\n      email: {from: email}\n"
        "      updated_at: {from: updated_at}\n"
        "      signup_at: {from: signup_at, format: [iso, '%d/%m/%Y %H:%M', "
        "'%d/%m/%Y %H:%MZ', '%Y-%m-%d %H:%M:%S +05:00']}\n",
    )
    load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW,
                    config=load_config(tmp_path))  # fmt: skip
    got = dict(conn.execute("select user_id, signup_at from raw.crm_contacts").fetchall())
    ny, utc = ZoneInfo("America/New_York"), ZoneInfo("UTC")

    def wall(text: str, fmt: str) -> datetime:
        return datetime.strptime(text, fmt).replace(tzinfo=ny).astimezone(utc).replace(tzinfo=None)

    assert got == {
        "u1": datetime(2025, 3, 1, 9, 0),
        "u2": datetime(2025, 3, 1, 8, 0),
        "u3": wall(values["u3"], "%Y-%m-%d %H:%M"),
        "u4": wall(values["u4"], "%d/%m/%Y %H:%M"),
        "u5": wall(values["u5"], "%d/%m/%Y %H:%MZ"),
        "u6": wall(values["u6"], "%Y-%m-%d %H:%M:%S +05:00"),
        "u7": datetime(2024, 7, 1, 13, 0),
    }
