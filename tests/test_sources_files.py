"""`files` source: the example landing folder loads cleanly; malformed inputs are quarantined
with file, line and a reason (or raise SourceError when a file is unusable)."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.settings import PROJECT_ROOT
from orchestration.sources.load import SourceError, load_partitions, replay_quarantine

EXAMPLES = PROJECT_ROOT / "examples" / "landing"
DAY = date(2025, 3, 3)
NOW = datetime(2025, 3, 10, 12, 0)


def _event(i: int, **overrides) -> dict:
    record = {
        "messageId": f"m-{i}",
        "type": "track",
        "event": "Signed In",
        "userId": f"u{i}",
        "anonymousId": f"a{i}",
        "timestamp": "2025-03-03T10:00:00Z",
        "receivedAt": "2025-03-03T10:00:01Z",
        "properties": {},
        "context": {},
    }
    record.update(overrides)
    return record


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _quarantine(conn) -> list[tuple]:
    return conn.execute("""select source_file, source_line, reason_code, reason_detail
                           from raw.quarantine order by source_file, source_line""").fetchall()


@pytest.fixture
def conn():
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_example_landing_folder_loads_every_row(conn) -> None:
    for table in ("events", "crm_contacts", "billing_invoices"):
        report = load_partitions(conn, table, [DAY], EXAMPLES, "files", 3, now=NOW)
        assert report.rows_read > 0
        assert report.rows_quarantined == 0, report.quarantine_preview
        assert report.rows_loaded == report.rows_read
        assert (
            conn.execute(f"select count(*) from raw.{table}").fetchall()[0][0] == report.rows_read
        )
    rows = conn.execute("""select message_id, type, event, user_id, anonymous_id, timestamp,
                           properties from raw.events order by _source_line""").fetchall()
    page, identify = rows[0], rows[1]
    assert page[1:5] == ("page", "Pricing", None, "8b1f6f6e-2f7b-4b8e-9d0c-6a1e5d7c3b21")
    assert page[5] == datetime(2025, 3, 3, 8, 58, 12, 402000)  # +01:00 -> UTC
    assert json.loads(identify[6]) == {"email": "lena@example.org", "plan": "trial"}
    # originalTimestamp (-05:00) used when timestamp is absent
    assert rows[4][5] == datetime(2025, 3, 3, 19, 20, 5)
    company = conn.execute(
        "select company from raw.crm_contacts where user_id = 'cust_1002'"
    ).fetchall()
    assert company == [("Harbor & Pine, Inc.",)]
    open_invoice = conn.execute(
        "select paid_at, amount from raw.billing_invoices where invoice_id = 'in_9002'"
    ).fetchall()
    assert open_invoice == [(None, 1490.0)]


def test_malformed_json_lines_keep_file_and_line(conn, tmp_path: Path) -> None:
    lines = [
        json.dumps(_event(1)),
        json.dumps(_event(2)),
        '{"messageId": "m-3", "type": ',
        "",
        "[1, 2]",
        json.dumps(_event(6)),
        json.dumps(_event(7))[:40],
    ]  # truncated last
    _write(
        tmp_path / "events" / "dt=2025-03-03" / "a.jsonl",
        b"\xef\xbb\xbf" + "\r\n".join(lines).encode(),
    )
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (6, 3, 3)
    assert [(q[1], q[2]) for q in _quarantine(conn)] == [
        (3, "malformed_json"),
        (5, "malformed_json"),
        (7, "malformed_json"),
    ]
    assert _quarantine(conn)[0][0] == "events/dt=2025-03-03/a.jsonl"
    assert "expected an object" in _quarantine(conn)[1][3]


def test_json_lines_scanned_in_chunks_keep_their_file_and_line(
    conn, tmp_path: Path, monkeypatch
) -> None:
    """The batch's JSON lines are registered in slices (DuckDB scans them in parallel): lines
    across slice and file boundaries keep their own file and line."""
    from orchestration.sources import stage

    monkeypatch.setattr(stage, "LINES_CHUNK_ROWS", 2)
    for name, bad in (("a.jsonl", 4), ("b.jsonl", 2)):
        lines = [json.dumps(_event(i, messageId=f"{name}-{i}")) for i in range(1, 6)]
        lines[bad - 1] = "{not json"
        _write(tmp_path / "events" / "dt=2025-03-03" / name, "\n".join(lines) + "\n")
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert (report.rows_loaded, report.rows_quarantined) == (8, 2)
    loaded = conn.execute(
        "select message_id, _source_file, _source_line from raw.events order by all"
    ).fetchall()
    assert loaded == [
        (f"{n}-{i}", f"events/dt=2025-03-03/{n}", i)
        for n, bad in (("a.jsonl", 4), ("b.jsonl", 2))
        for i in range(1, 6)
        if i != bad
    ]
    assert [(q[0][-7:], q[1], q[2]) for q in _quarantine(conn)] == [
        ("a.jsonl", 4, "malformed_json"),
        ("b.jsonl", 2, "malformed_json"),
    ]


@pytest.mark.parametrize("block", [None, 64])
def test_csv_read_in_row_group_chunks_keeps_rows_lines_and_trims(
    conn, tmp_path: Path, monkeypatch, block
) -> None:
    """Arrow's CSV chunks are regrouped into DuckDB row groups before the insert (one chunk
    sliced; many small ones, from 64-byte blocks, combined and sliced): every row keeps its
    line, a padded value in a later slice is still trimmed, and a bad row in the middle slice
    is quarantined with its own line."""
    from orchestration.sources import read_tabular, stage

    monkeypatch.setattr(stage, "ROW_GROUP_ROWS", 3)
    if block:
        monkeypatch.setattr(read_tabular, "_ARROW_BLOCK", block)
    rows = ["user_id,email,updated_at"]
    for i in range(1, 9):
        email = " Pad@Example.com " if i == 7 else f"u{i}@example.com"
        rows.append(f"u{i},{email},{'nope' if i == 5 else '2025-03-03T10:00:00Z'}")
    _write(tmp_path / "crm_contacts" / "dt=2025-03-03" / "a.csv", "\n".join(rows) + "\n")
    report = load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (8, 7, 1)
    loaded = conn.execute(
        "select user_id, email, _source_line from raw.crm_contacts order by _source_line"
    ).fetchall()
    emails = {i: "Pad@Example.com" if i == 7 else f"u{i}@example.com" for i in range(1, 9)}
    assert loaded == [(f"u{i}", emails[i], i + 1) for i in range(1, 9) if i != 5]
    assert [(q[1], q[2]) for q in _quarantine(conn)] == [(6, "wrong_type")]


def test_bad_utf8_bytes_are_quarantined_as_bad_encoding(conn, tmp_path: Path) -> None:
    good = json.dumps(_event(1)).encode()
    bad = json.dumps(_event(2, event="Signed In")).encode().replace(b"Signed", b"Sign\xff\xfed")
    _write(tmp_path / "events" / "dt=2025-03-03" / "b.jsonl", b"\n".join([good, bad, good]) + b"\n")
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.rows_read == 3 and report.quarantined_by_reason == {"bad_encoding": 1}
    ((file, line, reason, detail),) = _quarantine(conn)
    assert (line, reason) == (2, "bad_encoding") and "0xff" in detail


def test_empty_files_are_reported_not_errors(conn, tmp_path: Path) -> None:
    _write(tmp_path / "events" / "dt=2025-03-03" / "empty.jsonl", b"")
    _write(tmp_path / "crm_contacts" / "dt=2025-03-03" / "empty.csv", b"")
    for table in ("events", "crm_contacts"):
        report = load_partitions(conn, table, [DAY], tmp_path, "files", 3, now=NOW)
        assert report.rows_read == 0 and report.empty_files
        assert any("empty file" in w for w in report.warnings)


def test_csv_quoted_newlines_extra_columns_and_wrong_types(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "billing_invoices" / "dt=2025-03-03" / "inv.csv",
        "invoice_id,user_id,amount,currency,status,period_start,period_end,paid_at,note\n"
        'i1,u1,10.5,USD,paid,2025-03-03T10:00:00Z,2025-04-02T10:00:00Z,2025-03-03T11:00:00Z,"two\nlines"\n'
        "i2,u2,abc,USD,paid,2025-03-03T10:00:00Z,2025-04-02T10:00:00Z,,x\n"
        "i3,u3,-5,EUR,refunded,2025-03-03,2025-04-02,,x\n"
        "i4,u4,5e9,EUR,paid,2025-03-03,2025-04-02,,x\n"
        "i5,u5,20,EUR,paid,2025-03-03,2025-04-02\n"
        "i6,,20,EUR,paid,yesterday,2025-04-02,,x\n",
    )
    report = load_partitions(conn, "billing_invoices", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.rows_read == 6 and report.rows_loaded == 1
    assert report.extra_columns == {"billing_invoices/dt=2025-03-03/inv.csv": ["note"]}
    q = {line: (reason, detail) for _, line, reason, detail in _quarantine(conn)}
    assert q[4] == ("wrong_type", "column amount: expected a number, found abc")
    assert q[5][0] == "negative_amount"
    assert q[6][0] == "amount_out_of_range"
    assert q[7][0] == "malformed_csv" and "expected 9 fields" in q[7][1]
    assert q[8][0] == "null_key" and "user_id" in q[8][1]
    assert conn.execute("select _source_line from raw.billing_invoices").fetchall() == [(2,)]


def test_missing_required_column_quarantines_the_file_with_a_clear_detail(
    conn, tmp_path: Path
) -> None:
    _write(
        tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv",
        "user_id,email,plan\nu1,a@example.com,free\nu2,b@example.com,pro\n",
    )
    report = load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.quarantined_by_reason == {"missing_required_column": 2}
    detail = _quarantine(conn)[0][3]
    assert "crm_contacts/dt=2025-03-03/c.csv" in detail and "updated_at" in detail
    assert "expected columns" in detail and "found user_id, email, plan" in detail


def test_timestamp_rules_and_value_too_large(conn, tmp_path: Path) -> None:
    records = [
        _event(1),
        _event(2, timestamp="2031-01-01T00:00:00Z"),  # future
        _event(3, timestamp="1999-12-31T23:59:59Z"),  # too old
        _event(4, timestamp="2025-02-25T10:00:00Z"),  # 6 days late, window 3
        _event(5, timestamp="2025-03-01T10:00:00+02:00"),  # 2 days late: loaded
        _event(6, properties={"blob": "x" * 1_100_000}),  # > 1 MiB
        _event(7, event="Unplanned Thing"),
        _event(8, userId="", anonymousId=None),
        _event(9, userId=None),  # anonymous: valid
        _event(10, type="alias"),
        _event(11, timestamp="not a date"),
    ]
    _write(
        tmp_path / "events" / "dt=2025-03-03" / "e.jsonl",
        "\n".join(json.dumps(r) for r in records) + "\n",
    )
    report = load_partitions(
        conn, "events", [DAY], tmp_path, "files", 3, now=NOW, timestamp_floor=date(2000, 1, 1)
    )
    reasons = {line: reason for _, line, reason, _ in _quarantine(conn)}
    assert reasons == {
        2: "timestamp_in_future",
        3: "timestamp_too_old",
        4: "outside_late_window",
        6: "value_too_large",
        7: "unknown_event",
        8: "null_key",
        10: "unknown_event",
        11: "wrong_type",
    }
    assert report.rows_loaded == 3
    loaded = conn.execute("select message_id, timestamp from raw.events order by 1").fetchall()
    assert ("m-5", datetime(2025, 3, 1, 8, 0)) in loaded


def test_undated_files_are_assigned_by_their_date_column(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "events" / "backfill.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                _event(1, timestamp="2025-03-02T23:30:00-02:00"),  # 2025-03-03 01:30 UTC
                _event(2, timestamp="2025-03-04T10:00:00Z"),
                _event(3, timestamp="garbage"),
            ]
        ),
    )
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert conn.execute("select message_id, _partition_date from raw.events").fetchall() == [
        ("m-1", DAY)
    ]
    unassigned = [p for p in report.partitions if p.partition_date is None]
    assert unassigned and unassigned[0].quarantined_by_reason == {"wrong_type": 1}
    load_partitions(conn, "events", [date(2025, 3, 4)], tmp_path, "files", 3, now=NOW)
    assert conn.execute("select count(*) from raw.events").fetchall()[0][0] == 2
    assert conn.execute("select count(*) from raw.quarantine").fetchall()[0][0] == 1


def test_parquet_with_offset_timestamps_and_json_array_files(conn, tmp_path: Path) -> None:
    table = pa.table(
        {
            "messageId": ["p1", "p2"],
            "type": ["track", "track"],
            "event": ["Signed In", "Nope"],
            "userId": ["u1", "u2"],
            "anonymousId": [None, None],
            "timestamp": pa.array(
                [datetime(2025, 3, 3, 12), datetime(2025, 3, 3, 13)],
                pa.timestamp("us", tz="Europe/Berlin"),
            ),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    _write(
        tmp_path / "events" / "dt=2025-03-03" / "x.parquet", (tmp_path / "p.parquet").read_bytes()
    )
    _write(
        tmp_path / "events" / "dt=2025-03-03" / "y.json", json.dumps([_event(1), "oops", _event(3)])
    )
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.rows_read == 5
    assert [(f, line, r) for f, line, r, _ in _quarantine(conn)] == [
        ("events/dt=2025-03-03/x.parquet", 2, "unknown_event"),
        ("events/dt=2025-03-03/y.json", 2, "malformed_json"),
    ]
    ts = conn.execute("select timestamp from raw.events where message_id = 'p1'").fetchall()
    assert ts == [(datetime(2025, 3, 3, 12),)]  # 12:00 UTC stored naive


def test_unusable_inputs_raise_source_error_naming_the_file(conn, tmp_path: Path) -> None:
    _write(tmp_path / "billing_invoices" / "dt=2025-03-03" / "bad.parquet", b"PAR1 not really")
    with pytest.raises(SourceError) as info:
        load_partitions(conn, "billing_invoices", [DAY], tmp_path, "files", 3, now=NOW)
    assert info.value.file == "billing_invoices/dt=2025-03-03/bad.parquet"
    assert "bad.parquet" in str(info.value)
    with pytest.raises(SourceError, match="unknown raw table"):
        load_partitions(conn, "orders", [DAY], tmp_path, "files", 3)
    with pytest.raises(SourceError, match="does not exist"):
        load_partitions(conn, "events", [DAY], tmp_path / "missing", "files", 3)


def test_other_files_are_reported_as_skipped(conn, tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "landing")
    _write(tmp_path / "landing" / "events" / "dt=2025-03-03" / "notes.txt", "hello")
    report = load_partitions(conn, "events", [DAY], tmp_path / "landing", "files", 3, now=NOW)
    assert report.rows_quarantined == 0
    assert any("notes.txt" in w for w in report.warnings)


def test_csv_with_bom_and_latin1_bytes(conn, tmp_path: Path) -> None:
    header = "user_id,email,signup_at,company,industry,company_size,country,role,plan,acquisition_channel,updated_at\n"
    good = "u1,a@example.com,2025-03-01T10:00:00Z,Acme,software,1-10,US,engineer,free,direct,2025-03-03T10:00:00Z\n"
    bad = "u2,b@example.com,2025-03-01T10:00:00Z,Caf\xe9 GmbH,retail,1-10,DE,other,free,direct,2025-03-03T11:00:00Z\n"
    _write(
        tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv",
        b"\xef\xbb\xbf" + header.encode() + good.encode() + bad.encode("latin-1") + good.encode(),
    )
    report = load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)
    assert (report.rows_read, report.rows_loaded) == (3, 2)
    ((_, line, reason, detail),) = _quarantine(conn)
    assert (line, reason) == (3, "bad_encoding") and "line 3" in detail


def test_csv_trims_padded_values_in_the_columns_that_have_them(conn, tmp_path: Path) -> None:
    """Arrow-read CSV: only columns with a space-padded value pay for `trim`; a padded value is
    still trimmed, a blank one still counts as missing, untouched columns keep inner spaces."""
    header = "user_id,email,signup_at,company,industry,company_size,country,role,plan,acquisition_channel,updated_at\n"
    rows = (
        "u1,a@example.com,2025-03-01T10:00:00Z,Acme  Inc,software,1-10,US,engineer,free,direct,2025-03-03T10:00:00Z\n"
        " u2 ,b@example.com,2025-03-01T10:00:00Z,Beta Co,software,1-10,US,engineer,free,direct,2025-03-03T11:00:00Z\n"
        "   ,c@example.com,2025-03-01T10:00:00Z,Gamma,software,1-10,US,engineer,free,direct,2025-03-03T12:00:00Z\n"
    )
    _write(tmp_path / "crm_contacts" / "dt=2025-03-03" / "c.csv", header + rows)
    report = load_partitions(conn, "crm_contacts", [DAY], tmp_path, "files", 3, now=NOW)
    assert (report.rows_read, report.rows_loaded) == (3, 2)
    loaded = conn.execute(
        "select user_id, company from raw.crm_contacts order by _source_line"
    ).fetchall()
    assert loaded == [("u1", "Acme  Inc"), ("u2", "Beta Co")]
    ((_, line, reason, _),) = _quarantine(conn)
    assert (line, reason) == (4, "null_key")


def test_invoice_accepted_values_period_order_and_nan(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "billing_invoices" / "dt=2025-03-03" / "inv.csv",
        "invoice_id,user_id,amount,currency,status,period_start,period_end,paid_at\n"
        "i1,u1,10,USD,paid,2025-03-03,2025-04-02,2025-03-03\n"
        "i2,u2,10,JPY,paid,2025-03-03,2025-04-02,\n"
        "i3,u3,10,EUR,pending,2025-03-03,2025-04-02,\n"
        "i4,u4,10,EUR,paid,2025-03-03,2025-02-01,\n"
        "i5,u5,NaN,EUR,paid,2025-03-03,2025-04-02,\n",
    )
    report = load_partitions(conn, "billing_invoices", [DAY], tmp_path, "files", 3, now=NOW)
    assert report.rows_loaded == 1
    q = {line: (reason, detail) for _, line, reason, detail in _quarantine(conn)}
    assert q[3] == ("invalid_value", "currency JPY is not one of USD, EUR, GBP")
    assert q[4][0] == "invalid_value" and "status pending" in q[4][1]
    assert q[5][0] == "invalid_value" and "period_end" in q[5][1]
    assert q[6] == ("wrong_type", "column amount: expected a number, found NaN")


def test_mixed_formats_in_one_partition_keep_their_own_lines(conn, tmp_path: Path) -> None:
    """JSON lines (read from Arrow) and CSV / JSON-array rows (staged) meet in one validation."""
    day_dir = tmp_path / "events" / "dt=2025-03-03"
    _write(
        day_dir / "a.jsonl",
        "\n".join(
            [
                json.dumps(_event(1)),
                "{oops",
                json.dumps(_event(3, properties={"b": "y" * 1_100_000})),
            ]
        ),
    )
    _write(
        day_dir / "b.csv",
        "message_id,type,event,user_id,timestamp\n"
        "c-1,track,Signed In,u1,2025-03-03T09:00:00Z\n"
        "c-2,track,Signed In,,2025-03-03T09:00:00Z\n",
    )
    _write(day_dir / "c.json", json.dumps([_event(7), _event(8, userId=None, anonymousId=None)]))
    report = load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (7, 3, 4)
    assert report.files == [f"events/dt=2025-03-03/{n}" for n in ("a.jsonl", "b.csv", "c.json")]
    loaded = conn.execute(
        "select _source_file, _source_line, message_id from raw.events order by 1, 2"
    ).fetchall()
    assert loaded == [
        ("events/dt=2025-03-03/a.jsonl", 1, "m-1"),
        ("events/dt=2025-03-03/b.csv", 2, "c-1"),
        ("events/dt=2025-03-03/c.json", 1, "m-7"),
    ]
    q = {
        (f.rsplit("/", 1)[1], line): (reason, detail)
        for f, line, reason, detail in _quarantine(conn)
    }
    assert q[("a.jsonl", 2)] == (
        "malformed_json",
        "line is not valid JSON (truncated or malformed)",
    )
    assert q[("a.jsonl", 3)][0] == "value_too_large" and "column properties" in q[("a.jsonl", 3)][1]
    assert q[("b.csv", 3)][0] == "null_key" and q[("c.json", 2)][0] == "null_key"


def test_replay_revalidates_a_fixed_malformed_line(conn, tmp_path: Path) -> None:
    _write(
        tmp_path / "events" / "dt=2025-03-03" / "a.jsonl",
        "\n".join([json.dumps(_event(1)), json.dumps(_event(2))[:30], "[1]"]) + "\n",
    )
    load_partitions(conn, "events", [DAY], tmp_path, "files", 3, now=NOW)
    assert [(q[1], q[2]) for q in _quarantine(conn)] == [
        (2, "malformed_json"),
        (3, "malformed_json"),
    ]
    assert replay_quarantine(conn, "events", "files", 3, now=NOW).still_failing_by_reason == {
        "malformed_json": 2
    }
    conn.execute(
        "update raw.quarantine set payload = ? where source_line = 2", [json.dumps(_event(2))]
    )
    result = replay_quarantine(conn, "events", "files", 3, now=NOW)
    assert (result.candidates, result.replayed) == (2, 1)
    assert conn.execute(
        "select message_id, _source_line from raw.events order by 2"
    ).fetchall() == [("m-1", 1), ("m-2", 2)]


def test_old_dates_load_unless_a_floor_is_set(conn, tmp_path: Path) -> None:
    """Real history before 2000 is data, not an error; SEGFLOW_TIMESTAMP_FLOOR sets a floor."""
    day = date(1998, 5, 1)
    folder = tmp_path / "events" / f"dt={day}"
    folder.mkdir(parents=True)
    event = {
        "messageId": "old1",
        "type": "track",
        "event": "Signed In",
        "userId": "u1",
        "timestamp": "1998-05-01T10:00:00Z",
        "receivedAt": "1998-05-01T10:00:01Z",
        "properties": {},
        "context": {},
    }
    (folder / "events.jsonl").write_text(json.dumps(event) + "\n")
    assert load_partitions(conn, "events", [day], tmp_path, "files", 3, now=NOW).rows_loaded == 1
    floored = load_partitions(
        conn, "events", [day], tmp_path, "files", 3, now=NOW, timestamp_floor=date(2000, 1, 1)
    )
    assert floored.rows_loaded == 0
    assert [reason for _, _, reason, _ in _quarantine(conn)] == ["timestamp_too_old"]
