"""Structure, not first lines (issue 21): a one-line JSON document is a document, a paginated
export holding one page blocks as incomplete, duplicated JSON keys are flagged. Fixtures follow
Stripe's documented list object (https://docs.stripe.com/api/pagination: `object: "list"`,
`data`, `has_more`, `url`)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import duckdb

from orchestration.sources.check import check_sources, render
from orchestration.sources.load import load_partitions
from orchestration.sources.mappings import load_config

NOW = datetime(2025, 3, 10, 12, 0)
T0 = 1740992400  # 2025-03-03 09:00:00 UTC


def _invoice(i: int, status: str = "paid") -> dict:
    return {
        "id": f"in_{i}",
        "object": "invoice",
        "customer": f"cus_{i}",
        "customer_email": f"c{i}@example.com",
        "currency": "usd",
        "amount_due": 1000 * i,
        "status": status,
        "created": T0,
        "period_start": T0,
        "period_end": T0 + 86400 * 30,
        "status_transitions": {"paid_at": T0 + 60 if status == "paid" else None},
        "metadata": {"user_id": f"u{i}"},
    }


def _doc(n: int, has_more: bool = False) -> dict:
    return {
        "object": "list",
        "url": "/v1/invoices",
        "has_more": has_more,
        "data": [_invoice(i) for i in range(1, n + 1)],
    }


def _load(landing: Path, table: str = "billing_invoices"):
    conn = duckdb.connect()
    report = load_partitions(
        conn, table, None, landing, "files", 3, now=NOW, config=load_config(landing)
    )
    return conn, report


def _stripe_landing(tmp_path: Path, text: str, name: str = "invoices.json") -> Path:
    landing = tmp_path / "landing"
    (landing / "stripe").mkdir(parents=True)
    (landing / "stripe" / name).write_text(text)
    (landing / "sources.yml").write_text(
        "sources:\n  billing_invoices: {preset: stripe_invoices_api}\n"
    )
    return landing


def test_one_line_json_document_is_read_as_a_document(tmp_path: Path) -> None:
    landing = _stripe_landing(tmp_path, json.dumps(_doc(7)))  # json.dump / jq -c: one line
    conn, report = _load(landing)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (7, 7, 0)
    total = conn.execute("select sum(amount) from raw.billing_invoices").fetchone()[0]
    assert total == sum(10.0 * i for i in range(1, 8))
    assert report.incomplete == {}


def test_document_records_found_without_records_path(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    day = landing / "events" / "dt=2025-03-03"
    day.mkdir(parents=True)
    events = [
        {
            "messageId": f"m{i}",
            "type": "track",
            "event": "Signed In",
            "userId": "u1",
            "timestamp": "2025-03-03T10:00:00Z",
        }
        for i in range(3)
    ]
    (day / "page.json").write_text(json.dumps({"results": events, "count": 3}))
    _, report = _load(landing, "events")
    assert (report.rows_read, report.rows_loaded) == (3, 3)
    assert any("records read from the document's `results` list" in w for w in report.warnings)


def test_json_lines_with_one_record_stay_json_lines(tmp_path: Path) -> None:
    landing = _stripe_landing(tmp_path, json.dumps(_invoice(1)) + "\n")
    _, report = _load(landing)
    assert (report.rows_read, report.rows_loaded) == (1, 1)


def test_one_page_of_a_paginated_export_blocks_as_incomplete(tmp_path: Path) -> None:
    landing = _stripe_landing(tmp_path, json.dumps(_doc(3, has_more=True)))
    _, report = _load(landing)
    assert report.rows_loaded == 3
    assert "has_more: true" in report.incomplete["stripe/invoices.json"]
    dry = check_sources(landing)
    assert not dry.ok
    text = render(dry)
    assert "BLOCKED" in text and "one page of a longer export" in text


def test_duplicated_json_keys_are_flagged(tmp_path: Path) -> None:
    body = json.dumps(_doc(2))
    body = body.replace('"currency": "usd"', '"currency": "usd", "currency": "eur"', 1)
    landing = _stripe_landing(tmp_path, body)
    conn, report = _load(landing)
    assert any("repeat a key (currency)" in w for w in report.warnings), report.warnings
    currencies = conn.execute(
        "select currency from raw.billing_invoices order by invoice_id"
    ).fetchall()
    assert currencies == [("EUR",), ("USD",)]  # the last value, as the warning says


# --- links, encodings, epoch units -------------------------------------------------------------


def _event_line(i: int, **overrides) -> str:
    record = {
        "messageId": f"m{i}",
        "type": "track",
        "event": "Signed In",
        "userId": f"u{i}",
        "timestamp": "2025-03-03T10:00:00Z",
        **overrides,
    }
    return json.dumps(record) + "\n"


def test_symlink_loop_and_dangling_link_are_reported_while_the_day_loads(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    day = landing / "events" / "dt=2025-03-03"
    day.mkdir(parents=True)
    (day / "good.jsonl").write_text(_event_line(1) + _event_line(2))
    (day / "loop.jsonl").symlink_to(day / "loop.jsonl")
    (day / "gone.jsonl").symlink_to(tmp_path / "deleted.jsonl")
    conn = duckdb.connect()
    report = load_partitions(conn, "events", None, landing, "files", 3, now=NOW)
    assert report.rows_loaded == 2
    reasons = {s.relative.rsplit("/", 1)[-1]: s.reason for s in report.blocking_skipped}
    assert reasons["loop.jsonl"].startswith("symbolic link loop")
    assert reasons["gone.jsonl"].startswith("dangling symbolic link")
    dry = check_sources(landing)
    assert not dry.ok and "loop.jsonl" in render(dry)


def test_declared_encoding_and_utf16_bom(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    folder = landing / "crm_contacts" / "dt=2025-03-03"
    folder.mkdir(parents=True)
    header = "user_id,email,company,updated_at\n"
    rows = [f"u{i},c{i}@example.com,Café Müller {i},2025-03-03T10:00:00Z\n" for i in range(5)]
    (folder / "latin1.csv").write_bytes((header + "".join(rows[:3])).encode("latin-1"))
    (landing / "sources.yml").write_text(
        "sources:\n  crm_contacts: {files: ['crm_contacts/**/latin1.csv'], encoding: latin-1}\n"
        "  contacts_utf16: {table: crm_contacts, files: ['crm_contacts/**/utf16.csv']}\n"
    )
    (folder / "utf16.csv").write_bytes((header + "".join(rows[3:])).encode("utf-16"))
    conn = duckdb.connect()
    report = load_partitions(
        conn, "crm_contacts", None, landing, "files", 3, now=NOW, config=load_config(landing)
    )
    assert (report.rows_read, report.rows_loaded) == (5, 5)
    companies = [
        r[0] for r in conn.execute("select company from raw.crm_contacts order by 1").fetchall()
    ]
    assert companies == [f"Café Müller {i}" for i in range(5)]


def test_epoch_milliseconds_read_as_seconds_are_quarantined_with_the_unit(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "mixpanel").mkdir(parents=True)
    ms = T0 * 1000
    lines = [
        json.dumps(
            {
                "event": "Signed In",
                "properties": {"time": ms + i, "distinct_id": "u1", "$insert_id": f"i{i}"},
            }
        )
        + "\n"
        for i in range(12)
    ]
    (landing / "mixpanel" / "export.json").write_text("".join(lines))
    (landing / "sources.yml").write_text("sources:\n  events: {preset: mixpanel_export}\n")
    conn = duckdb.connect()
    report = load_partitions(
        conn, "events", None, landing, "files", 3, now=NOW, config=load_config(landing)
    )
    assert report.rows_loaded == 0
    assert report.quarantined_by_reason == {"implausible_timestamp": 12}
    detail = conn.execute("select reason_detail from raw.quarantine limit 1").fetchone()[0]
    assert "epoch milliseconds: set format: epoch_ms" in detail
    assert sum(report.unassigned["mixpanel/export.json"].values()) == 12  # no partition
    dry = check_sources(landing)  # never crashes on data, and blocks like the run
    assert not dry.ok and "implausible_timestamp" in render(dry)


# --- mappings that cannot match, unlisted columns, declared format vs suffix ------------------

CONTACTS = (
    "Record ID,Email,Plan,Country,Last Modified Date\n"
    "1,a@example.com,pro,PT,2025-03-03 10:00\n"
    "2,b@example.com,free,DE,2025-03-03 11:00\n"
)


def _contacts(tmp_path: Path, columns: str) -> tuple[Path, object]:
    landing = tmp_path / "landing"
    (landing / "crm").mkdir(parents=True)
    (landing / "crm" / "contacts.csv").write_text(CONTACTS)
    (landing / "sources.yml").write_text(
        "sources:\n  crm_contacts:\n    files: ['crm/**']\n    columns:\n"
        "      user_id: Record ID\n"
        "      updated_at: {from: Last Modified Date, format: '%Y-%m-%d %H:%M'}\n" + columns
    )
    conn = duckdb.connect()
    report = load_partitions(
        conn, "crm_contacts", None, landing, "files", 3, now=NOW, config=load_config(landing)
    )
    return landing, (conn, report)


def test_unlisted_contract_columns_are_kept_from_the_header_or_reported(tmp_path: Path) -> None:
    landing, (conn, report) = _contacts(tmp_path, "")
    rows = conn.execute(
        "select user_id, email, plan, country from raw.crm_contacts order by 1"
    ).fetchall()
    assert rows == [("1", "a@example.com", "pro", "PT"), ("2", "b@example.com", "free", "DE")]
    dropped = [w for w in report.warnings if "dropped: not listed" in w]
    assert any("crm_contacts.industry dropped" in w for w in dropped)
    assert not any(".plan dropped" in w or ".country dropped" in w for w in dropped)
    assert "crm_contacts.industry dropped" in render(check_sources(landing))


def test_a_mapping_that_matches_nothing_warns_or_blocks(tmp_path: Path) -> None:
    landing, (_, report) = _contacts(tmp_path, "      plan: Lifecycle Stage\n")
    assert any(
        "columns.plan of source 'crm_contacts' (`Lifecycle Stage`) matched no value" in w
        for w in report.warnings
    )
    assert report.mapping_errors == []
    assert check_sources(landing).ok  # a warning, not a block
    landing2 = tmp_path / "inv"
    (landing2 / "stripe").mkdir(parents=True)
    (landing2 / "stripe" / "Invoices.csv").write_text(
        "id,Customer,Currency,Total,Status,Date (UTC)\nin_1,cus_A,usd,49.00,paid,2025-03-03 09:00\n"
    )
    (landing2 / "sources.yml").write_text(
        "sources:\n  billing_invoices:\n    preset: stripe_invoices_csv\n    identity: null\n"
        "    columns: {amount: Amount Due}\n"
    )
    dry = check_sources(landing2)
    assert not dry.ok
    assert "columns.amount of source 'billing_invoices' (`Amount Due`) matched no value" in (
        render(dry)
    )


def test_declared_format_disagreeing_with_the_suffix_says_which_was_used(tmp_path: Path) -> None:
    from tests.test_sources_money import API_CSV

    landing = _stripe_landing(tmp_path, API_CSV, name="invoices.csv")
    _, report = _load(landing)
    assert report.rows_loaded == 3
    assert any(
        "stripe/invoices.csv: read as csv (its suffix .csv); the source 'billing_invoices' "
        "declares format: json" in w
        for w in report.warnings
    )


def test_hubspot_lifecycle_stage_becomes_the_plan() -> None:
    landing = Path(__file__).parent / "fixtures" / "vendors" / "hubspot_contacts_csv" / "landing"
    conn = duckdb.connect()
    load_partitions(
        conn, "crm_contacts", None, landing, "files", 3, now=NOW, config=load_config(landing)
    )
    plans = dict(conn.execute("select email, plan from raw.crm_contacts").fetchall())
    assert plans["ana@example.com"] == "pro"  # customer
    assert plans["ben@example.com"] == "free"  # lead


def test_amplitude_page_views_are_pages_and_other_own_names_are_suggested(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "amplitude").mkdir(parents=True)
    rows = [
        {
            "event_type": name,
            "user_id": "u1",
            "device_id": "d1",
            "event_time": f"2025-03-03 10:00:0{i}.000000",
            "$insert_id": f"ins-{i}",
        }
        for i, name in enumerate(
            ["[Amplitude] Page Viewed", "[Amplitude] Element Clicked", "Signed In"]
        )
    ]
    (landing / "amplitude" / "export.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (landing / "sources.yml").write_text("sources:\n  events: {preset: amplitude_export}\n")
    conn = duckdb.connect()
    report = load_partitions(
        conn, "events", None, landing, "files", 3, now=NOW, config=load_config(landing)
    )
    types = dict(conn.execute("select event, type from raw.events").fetchall())
    assert types == {"[Amplitude] Page Viewed": "page", "Signed In": "track"}
    assert report.quarantined_by_reason == {"unknown_event": 1}
    text = render(check_sources(landing))
    assert "'[Amplitude] Element Clicked' (1 rows)" in text and "vars.tracking_plan" in text


def test_daylight_saving_gap_and_overlap_are_counted_with_the_rule(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "crm").mkdir(parents=True)
    (landing / "crm" / "contacts.csv").write_text(
        "Record ID,Email,Last Modified Date\n"
        "1,a@example.com,2025-03-09 02:30\n"  # skipped by the spring-forward change
        "2,b@example.com,2025-11-02 01:30\n"  # happens twice in the autumn
        "3,c@example.com,2025-06-01 12:00\n"
        "4,d@example.com,2025-03-09T02:30:00Z\n"  # has a zone: not a local wall time
    )
    (landing / "sources.yml").write_text(
        "sources:\n  crm_contacts:\n    files: ['crm/**']\n    time_zone: America/New_York\n"
        "    columns:\n      user_id: Record ID\n      email: Email\n"
        "      updated_at: {from: Last Modified Date, format: [iso, '%Y-%m-%d %H:%M']}\n"
    )
    conn = duckdb.connect()
    report = load_partitions(
        conn,
        "crm_contacts",
        None,
        landing,
        "files",
        3,
        now=datetime(2026, 1, 1),
        config=load_config(landing),
    )
    assert report.rows_loaded == 4
    assert report.dst == {"updated_at gap": 1, "updated_at overlap": 1}
    utc = dict(conn.execute("select user_id, updated_at from raw.crm_contacts").fetchall())
    assert utc["1"] == datetime(2025, 3, 9, 7, 30)  # read as 03:30 EDT, as DST_RULE says
    assert utc["2"] == datetime(2025, 11, 2, 6, 30)  # the later (EST) 01:30
    assert "daylight saving: {'updated_at gap': 1, 'updated_at overlap': 1}" in render(
        check_sources(landing)
    )


def test_daylight_saving_days_include_changes_at_midnight() -> None:
    """Only wall times on these days reach the zone conversions of the DST note: they must
    hold every change, including one at midnight (Santiago's gap is 00:00-01:00)."""
    from orchestration.sources.zones import transition_days

    ny = transition_days("America/New_York")
    assert {date(2025, 3, 9), date(2025, 11, 2)} <= set(ny)
    assert date(2025, 6, 1) not in ny
    assert date(2025, 9, 7) in transition_days("America/Santiago")
    assert transition_days("UTC") == ()


def test_wall_times_convert_like_duckdbs_zone_conversion() -> None:
    """The per-day offset lookup gives what `timezone(zone, wall)` gives, on every half hour
    of 2024-2026 (gaps, overlaps, Lord Howe's 30-minute change, Casablanca's Ramadan
    changes) and at the edges (before 1900, after 2200, infinity)."""
    import duckdb

    from orchestration.sources.zones import (
        register_zone_offsets,
        wall_to_utc_sql,
        zone_offsets_join,
    )

    conn = duckdb.connect()
    for zone in (
        "America/New_York",
        "America/Santiago",
        "Australia/Lord_Howe",
        "Africa/Casablanca",
    ):
        fast = wall_to_utc_sql("w", zone)
        sql = f"""select count(*), count(*) filter (where {fast} is distinct from
                    timezone('UTC', timezone('{zone}', w))), count(*) filter (where
                    {fast} <> w)
                  from (select unnest(generate_series(timestamp '2024-01-01',
                        timestamp '2026-12-31', interval 30 minute)) as w
                        union all select unnest([timestamp '1850-06-01 12:00',
                        timestamp '2250-06-01 12:00', 'infinity'::timestamp,
                        '-infinity'::timestamp, null])){zone_offsets_join(zone)}"""
        register_zone_offsets(conn, sql)
        ((total, differ, converted),) = conn.execute(sql).fetchall()
        assert total > 50_000 and converted > total // 2  # shifted, not passed through
        assert differ == 0, zone
