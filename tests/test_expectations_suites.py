"""The GX suites on real DuckDB tables: clean partitions pass, each defect fails the check
that names it, with counts, samples pointing at file:line, and actionable messages."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from expectations import QualityConfig, validate_table
from expectations.config import AcceptedValues

DAY = date(2025, 3, 10)
NOW = datetime(2025, 3, 12, 12, 0)
KNOWN_EVENTS = frozenset({"Signed In", "Project Created", "Report Created"})
CONFIG = QualityConfig(accepted=AcceptedValues(event_names=KNOWN_EVENTS))

RAW_META = (
    "_partition_date DATE, _loaded_at TIMESTAMP, _source VARCHAR, _source_file VARCHAR, "
    "_source_line BIGINT"
)
DDL = {
    "events": "message_id VARCHAR, type VARCHAR, event VARCHAR, user_id VARCHAR, "
    "anonymous_id VARCHAR, timestamp TIMESTAMP, received_at TIMESTAMP, "
    "properties JSON, context JSON",
    "crm_contacts": "user_id VARCHAR, email VARCHAR, signup_at TIMESTAMP, company VARCHAR, "
    "industry VARCHAR, company_size VARCHAR, country VARCHAR, role VARCHAR, "
    "plan VARCHAR, acquisition_channel VARCHAR, updated_at TIMESTAMP, attributes JSON",
    "billing_invoices": "invoice_id VARCHAR, user_id VARCHAR, amount DOUBLE, currency VARCHAR, "
    "status VARCHAR, period_start TIMESTAMP, period_end TIMESTAMP, "
    "paid_at TIMESTAMP",
}


def create_raw(conn: duckdb.DuckDBPyConnection, table: str, ddl: str | None = None) -> None:
    conn.execute("create schema if not exists raw")
    conn.execute(f"create table raw.{table} ({ddl or DDL[table]}, {RAW_META})")


def add_events(conn, day: date, n: int, *, prefix: str | None = None, **overrides) -> None:
    """n clean events on `day` (ids unique per prefix), columns overridable by SQL expression."""
    prefix = prefix or f"m{day:%m%d}-"
    cols = {
        "message_id": f"'{prefix}' || i",
        "type": "'track'",
        "event": "case when i % 2 = 0 then 'Signed In' else 'Project Created' end",
        "user_id": "'u' || (i % 40)",
        "anonymous_id": "null",
        "timestamp": f"timestamp '{day} 08:00:00' + to_seconds(i * 7)",
        "received_at": f"timestamp '{day} 08:00:01' + to_seconds(i * 7)",
        "properties": '\'{"plan": "pro"}\'',
        "context": "'{}'",
        "_partition_date": f"date '{day}'",
        "_loaded_at": "timestamp '2025-03-12 00:00:00'",
        "_source": "'files'",
        "_source_file": f"'events/dt={day}/events.jsonl'",
        "_source_line": "i",
    }
    cols.update(overrides)
    conn.execute(
        f"insert into raw.events select {', '.join(f'{v} as {k}' for k, v in cols.items())} "
        f"from range(1, {n + 1}) t(i)"
    )


@pytest.fixture()
def conn(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        yield connection


def failing(result) -> dict[str, object]:
    return {o.check: o for o in result.outcomes if not o.passed}


def test_clean_events_pass_every_check(conn):
    create_raw(conn, "events")
    for back in range(5, 0, -1):
        add_events(conn, DAY - timedelta(days=back), 200)
    add_events(conn, DAY, 200)
    result = validate_table(conn, "raw.events", [DAY], CONFIG, now=NOW)
    assert result.row_count == 200
    assert failing(result) == {}
    assert result.passed and len(result.outcomes) > 20
    json.dumps(result.metadata())  # metadata must be JSON-safe


def test_event_defects_fail_the_named_checks_with_file_and_line(conn):
    create_raw(conn, "events")
    add_events(
        conn,
        DAY,
        100,
        **{
            "user_id": "case when i in (3, 4) then '' else 'u' || i end",
            "type": "case when i = 5 then 'alias' else 'track' end",
            "event": "case when i in (6, 7, 8) then 'Widget Clicked' else 'Signed In' end",
            "timestamp": "case when i = 9 then timestamp '2030-01-01' when i = 10 then timestamp "
            "'1999-12-31' when i = 11 then timestamp '2025-03-01' "
            f"else timestamp '{DAY} 09:00:00' end",
            "message_id": "case when i in (12, 13) then 'dup' else 'm' || i end",
        },
    )
    result = validate_table(conn, "events", [DAY], CONFIG, now=NOW)
    assert not any(".after_floor" in o.check for o in result.outcomes)  # no floor by default
    floored = replace(CONFIG, timestamp_floor=date(2000, 1, 1))
    result = validate_table(conn, "events", [DAY], floored, now=NOW)
    bad = failing(result)
    assert bad["events.identity.not_null"].unexpected_count == 2
    assert bad["events.identity.not_null"].blocking
    assert {s["_source_line"] for s in bad["events.identity.not_null"].sample_unexpected} == {3, 4}
    assert bad["events.type.accepted_values"].unexpected_count == 1
    unknown = bad["events.event.in_tracking_plan"]
    assert (unknown.unexpected_count, unknown.severity, unknown.blocking) == (3, "warn", False)
    assert (
        "Widget Clicked" in unknown.message and f"events/dt={DAY}/events.jsonl:6" in unknown.message
    )
    assert bad["events.timestamp.not_in_future"].unexpected_count == 1
    assert bad["events.timestamp.after_floor"].unexpected_count == 1
    # 1999 and 2025-03-01 are both more than 3 days before the partition
    assert bad["events.timestamp.within_late_window"].unexpected_count == 2
    # 2030 is after the end of the partition day as well as in the future
    assert bad["events.timestamp.not_after_partition"].unexpected_count == 1
    dup = bad["events.message_id.duplicates"]
    assert (dup.unexpected_count, dup.severity) == (2, "warn")
    assert not result.passed and result.severity == "error"
    rows = result.failing_table()
    assert {r["check"] for r in rows} == set(bad) and all(len(r["sample"]) < 160 for r in rows)


def test_duplicate_share_below_threshold_passes(conn):
    create_raw(conn, "events")
    add_events(conn, DAY, 1000, message_id="case when i = 2 then 'm1' else 'm' || i end")
    result = validate_table(conn, "events", [DAY], CONFIG, now=NOW)
    dup = result.outcome("events.message_id.duplicates")
    assert dup.passed and dup.unexpected_count == 2  # counted, 0.2% < 1% threshold
    strict = QualityConfig(duplicate_warn_share=0.001, accepted=CONFIG.accepted)
    assert (
        not validate_table(conn, "events", [DAY], strict, now=NOW)
        .outcome("events.message_id.duplicates")
        .passed
    )


def test_duplicates_across_days_are_counted(conn):
    create_raw(conn, "events")
    add_events(conn, DAY - timedelta(days=1), 50, prefix="same-")
    add_events(conn, DAY, 50, prefix="same-")  # every id was already sent yesterday
    result = validate_table(conn, "events", [DAY], CONFIG, now=NOW)
    across = result.outcome("events.message_id.duplicates_across_partitions")
    assert not across.passed and across.severity == "warn"
    assert across.sample_unexpected[0]["cross_partition_duplicate_share"] == 1.0
    assert result.outcome("events.message_id.duplicates").passed  # unique within the day


def test_row_count_drop_against_trailing_median(conn):
    create_raw(conn, "events")
    for back in range(7, 0, -1):
        add_events(conn, DAY - timedelta(days=back), 100)
    add_events(conn, DAY, 19)  # 81% below the median of 100
    result = validate_table(conn, "events", [DAY], CONFIG, now=NOW)
    drop = result.outcome("events.row_count.vs_trailing_median")
    assert drop.blocking and drop.unexpected_count == 1
    assert drop.sample_unexpected[0]["row_count_ratio"] == pytest.approx(0.19)
    conn.execute(f"delete from raw.events where _partition_date = '{DAY}'")
    add_events(conn, DAY, 21)  # 79% below: still within the 80% rule
    ok = validate_table(conn, "events", [DAY], CONFIG, now=NOW)
    assert ok.outcome("events.row_count.vs_trailing_median").passed


def test_row_count_rule_needs_history(conn):
    create_raw(conn, "events")
    add_events(conn, DAY - timedelta(days=1), 1000)
    add_events(conn, DAY, 5)
    result = validate_table(conn, "events", [DAY], CONFIG, now=NOW)
    assert result.outcome("events.row_count.vs_trailing_median").passed


def test_missing_column_and_wrong_type_name_table_column_expected_found(conn):
    create_raw(
        conn,
        "billing_invoices",
        "invoice_id VARCHAR, user_id VARCHAR, amount VARCHAR, status VARCHAR, "
        "period_start TIMESTAMP, period_end TIMESTAMP, paid_at TIMESTAMP",
    )
    conn.execute(
        f"insert into raw.billing_invoices values ('i1', 'u1', 'abc', 'paid', "
        f"'{DAY}', '{DAY}', '{DAY} 10:00', '{DAY}', now(), 'files', 'x.csv', 2)"
    )
    result = validate_table(conn, "billing_invoices", [DAY], CONFIG, now=NOW)
    missing = result.outcome("billing_invoices.columns.present")
    assert missing.blocking
    assert "raw.billing_invoices [2025-03-10]" in missing.message
    assert "missing column(s) currency" in missing.message
    assert "; found _loaded_at" in missing.message and "status" in missing.message
    wrong = result.outcome("billing_invoices.amount.type")
    assert wrong.blocking
    assert "column 'amount': expected type DOUBLE" in wrong.message
    assert wrong.message.endswith("found VARCHAR")
    # rules on the missing column are not evaluated; the others still are
    assert not any(
        o.check.startswith("billing_invoices.currency.accepted") for o in result.outcomes
    )
    assert result.outcome("billing_invoices.invoice_id.not_null").passed


def test_invoice_amounts_currency_and_window(conn):
    create_raw(conn, "billing_invoices")
    conn.execute(f"""insert into raw.billing_invoices select 'inv' || i, 'u' || i,
        case when i = 1 then -5 when i = 2 then 5e9 else 49.0 end,
        case when i = 3 then 'XYZ' else 'EUR' end, 'paid',
        timestamp '{DAY}', timestamp '{DAY}' + interval 30 day,
        case when i = 4 then timestamp '{DAY}' - interval 10 day else timestamp '{DAY} 10:00' end,
        date '{DAY}', now(), 'files', 'billing_invoices/dt={DAY}/inv.parquet', i
        from range(1, 51) t(i)""")
    bad = failing(validate_table(conn, "billing_invoices", [DAY], CONFIG, now=NOW))
    assert bad["billing_invoices.amount.non_negative"].unexpected_count == 1
    assert bad["billing_invoices.amount.max"].severity == "warn"
    assert (
        bad["billing_invoices.currency.accepted_values"].sample_unexpected[0]["currency"] == "XYZ"
    )
    late = bad["billing_invoices.paid_at.within_late_window"]
    assert (late.unexpected_count, late.severity) == (1, "warn")
    assert set(bad) == {
        "billing_invoices.amount.non_negative",
        "billing_invoices.amount.max",
        "billing_invoices.currency.accepted_values",
        "billing_invoices.paid_at.within_late_window",
    }


def test_contacts_accepted_values_warn(conn):
    create_raw(conn, "crm_contacts")
    conn.execute(f"""insert into raw.crm_contacts select 'u' || i, 'u' || i || '@x.io',
        timestamp '2025-01-01', 'Acme', 'saas', case when i = 1 then '5000+' else '11-50' end,
        'US', 'engineer', case when i = 2 then 'platinum' else 'pro' end, 'ads',
        timestamp '{DAY} 10:00', null, date '{DAY}', now(), 'files', 'c.csv', i + 1
        from range(1, 31) t(i)""")
    result = validate_table(conn, "crm_contacts", [DAY], CONFIG, now=NOW)
    bad = failing(result)
    assert set(bad) == {
        "crm_contacts.plan.accepted_values",
        "crm_contacts.company_size.accepted_values",
    }
    assert all(o.severity == "warn" for o in bad.values()) and result.passed


def test_missing_table_is_a_blocking_outcome(conn):
    result = validate_table(conn, "events", [DAY], CONFIG, now=NOW)
    (only,) = result.outcomes
    assert only.blocking and "raw.events does not exist" in only.message


FRAMES = ("schema", "rows", "partitions")


def test_data_docs_html_written(conn, tmp_path):
    create_raw(conn, "events")
    add_events(conn, DAY, 20, user_id="null")  # no identity -> a failure shows in the docs
    gx_dir = tmp_path / "home" / "gx"
    result = validate_table(conn, "events", [DAY], CONFIG, gx_dir=gx_dir, now=NOW)
    index = gx_dir / "data_docs" / "index.html"
    assert result.data_docs_index == index.resolve() and index.is_file()
    assert result.data_docs_url == index.resolve().as_uri()
    assert (gx_dir / "expectations" / "raw_events__rows.json").is_file()
    pages = list((gx_dir / "data_docs" / "validations").rglob("*.html"))
    assert pages, "a validation result page is rendered"
    assert any("dq_identity" in page.read_text() for page in pages)
    # a second run reuses the same file context (suites updated, not duplicated); only the
    # newest `gx_keep_results` results per suite stay listed
    keep_one = replace(CONFIG, gx_keep_results=1)
    config_file = gx_dir / "great_expectations.yml"
    written = config_file.stat().st_mtime_ns
    again = validate_table(conn, "events", [DAY], keep_one, gx_dir=gx_dir, now=NOW)
    # the frames' data source and assets are stored once, not rewritten on every validation
    assert config_file.stat().st_mtime_ns == written
    assert all(f"raw_events__{frame}" in config_file.read_text() for frame in FRAMES)
    assert again.outcome("events.identity.not_null").unexpected_count == 20
    stored = list((gx_dir / "uncommitted" / "validations").rglob("*.json"))
    assert sorted(
        p.relative_to(gx_dir / "uncommitted" / "validations").parts[0] for p in stored
    ) == ["raw_events__partitions", "raw_events__rows", "raw_events__schema"]
    assert index.read_text().count("raw_events__rows/") == 1


def test_chunked_validation_equals_one_frame(conn):
    """A long range is validated a few days at a time; the merged outcome is the same."""
    create_raw(conn, "events")
    days = [DAY - timedelta(days=i) for i in range(9, -1, -1)]
    for i, day in enumerate(days):
        add_events(
            conn,
            day,
            50 + i,
            user_id=f"case when i <= {i % 3} then null else 'u' end",
            message_id=f"case when i = 2 then 'm{day:%d}-1' else 'm{day:%d}-' || i end",
        )
    whole = validate_table(conn, "events", days, replace(CONFIG, chunk_days=30), now=NOW)
    chunked = validate_table(conn, "events", days, replace(CONFIG, chunk_days=3), now=NOW)
    assert [o.check for o in whole.outcomes] == [o.check for o in chunked.outcomes]
    assert whole.row_count == chunked.row_count == sum(50 + i for i in range(10))
    for a, b in zip(whole.outcomes, chunked.outcomes, strict=True):
        assert (a.check, a.passed, a.unexpected_count) == (b.check, b.passed, b.unexpected_count)
        if a.unexpected_percent is not None and a.element_count:
            assert a.unexpected_percent == pytest.approx(b.unexpected_percent)
    identity = chunked.outcome("events.identity.not_null")
    assert identity.unexpected_count == sum(i % 3 for i in range(10)) == 9
    assert identity.partitions == [d.isoformat() for d in days]


def test_contact_changed_twice_a_day_is_healthy_a_redelivery_warns(conn):
    create_raw(conn, "crm_contacts")

    def add(hour_sql: str) -> None:
        conn.execute(f"""insert into raw.crm_contacts select 'u' || (i % 20), 'u' || i || '@x.io',
            timestamp '2025-01-01', 'Acme', 'saas', '11-50', 'US', 'engineer', 'pro', 'ads',
            timestamp '{DAY} 00:00' + to_hours({hour_sql}), null, date '{DAY}', now(), 'files',
            'c.csv', i + 1 from range(0, 40) t(i)""")

    add("i // 20")  # each contact twice, at two different times: plan changed twice
    assert "crm_contacts.user_id.updated_at.duplicates" not in failing(
        validate_table(conn, "crm_contacts", [DAY], CONFIG, now=NOW)
    )
    add("0")  # the first change delivered again
    redelivered = failing(validate_table(conn, "crm_contacts", [DAY], CONFIG, now=NOW))
    assert redelivered["crm_contacts.user_id.updated_at.duplicates"].severity == "warn"
