"""Structure, not first lines (issue 21): a one-line JSON document is a document, a paginated
export holding one page blocks as incomplete, duplicated JSON keys are flagged. Fixtures follow
Stripe's documented list object (https://docs.stripe.com/api/pagination: `object: "list"`,
`data`, `has_more`, `url`)."""

from __future__ import annotations

import json
from datetime import datetime
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
