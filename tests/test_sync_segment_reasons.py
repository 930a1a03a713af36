"""`segment_reasons` in the sync payload: off by default, on with
SEGFLOW_SYNC_SEGMENT_REASONS, sent to the fake Customer.io over real HTTP as the same text as
people.csv, and only re-sent when a reason changes."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest
from support.sync_inputs import write_inputs

from orchestration.activation.destinations import CustomerIODestination, RetryPolicy
from orchestration.activation.fake_customerio import FakeConfig, FakeCustomerIO
from orchestration.activation.sync import SyncOptions, sync
from orchestration.segments.reasons import DDL as REASONS_DDL
from orchestration.settings import Settings

DAY1, DAY2 = date(2025, 3, 10), date(2025, 3, 11)
SITE, KEY = "site-1", "sk-test-reasons"


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def fake():
    with FakeCustomerIO(FakeConfig(site_id=SITE, api_key=KEY)) as server:
        yield server


def _destination(fake: FakeCustomerIO) -> CustomerIODestination:
    return CustomerIODestination(
        base_url=fake.url, site_id=SITE, api_key=KEY, rate_limit=0,
        retry=RetryPolicy(max_retries=2, base_delay=0.001), timeout=(2.0, 2.0),
    )  # fmt: skip


def _day(conn, day: date, reasons: list[tuple[str, str, str]]) -> None:
    members: dict[str, list[str]] = {"u1": [], "u2": [], "u3": []}
    for user, segment, _ in reasons:
        members[user].append(segment)
    frame = pd.DataFrame(
        [{"user_id": u, "segment_date": day, "segments": sorted(s) or ["smb"]} for u, s in members.items()]
    )  # fmt: skip
    write_inputs(conn, user_segments=frame)
    conn.execute(REASONS_DDL)
    conn.execute("delete from main.segment_reasons")
    conn.executemany(
        "insert into main.segment_reasons values (?, ?, ?, ?)",
        [(u, day, s, r) for u, s, r in reasons],
    )


def _options(monkeypatch, value: str | None) -> SyncOptions:
    if value is None:
        monkeypatch.delenv("SEGFLOW_SYNC_SEGMENT_REASONS", raising=False)
    else:
        monkeypatch.setenv("SEGFLOW_SYNC_SEGMENT_REASONS", value)
    return SyncOptions.from_settings(Settings.from_env())


def test_reasons_are_off_by_default(conn, fake, monkeypatch) -> None:
    _day(conn, DAY1, [("u1", "churn_risks", "churn_band == 'high'")])
    report = sync(conn, _destination(fake), options=_options(monkeypatch, None))
    assert report.status == "ok" and report.people_succeeded == 3
    assert all("segment_reasons" not in person for person in fake.people.values())


def test_reasons_are_sent_as_people_csv_writes_them_and_resent_only_on_change(
    conn, fake, monkeypatch
) -> None:
    options = _options(monkeypatch, "true")
    assert options.payload.segment_reasons
    _day(conn, DAY1, [
        ("u1", "churn_risks", "churn_band == 'high'"), ("u1", "at_risk", "active_days_7d == 0"),
        ("u2", "churn_risks", "activity_trend <= -0.5"),
    ])  # fmt: skip
    first = sync(conn, _destination(fake), options=options)
    assert first.status == "ok" and first.people_succeeded == 3
    assert fake.people["u1"]["segment_reasons"] == (
        "at_risk: active_days_7d == 0; churn_risks: churn_band == 'high'"
    )
    assert fake.people["u2"]["segment_reasons"] == "churn_risks: activity_trend <= -0.5"
    assert "segment_reasons" not in fake.people["u3"]  # no reason rows: attribute omitted
    # next day only u2's reason changes: u2 alone is sent, with the new text
    _day(conn, DAY2, [
        ("u1", "churn_risks", "churn_band == 'high'"), ("u1", "at_risk", "active_days_7d == 0"),
        ("u2", "churn_risks", "churn_band == 'high'"),
    ])  # fmt: skip
    items_before = len(fake.received_items)
    second = sync(conn, _destination(fake), options=options)
    assert (second.people_changed, second.people_succeeded) == (1, 1)
    assert fake.people["u2"]["segment_reasons"] == "churn_risks: churn_band == 'high'"
    sent = fake.received_items[items_before:]
    people = [i for i in sent if i["action"] == "identify"]
    assert [(p["identifiers"]["id"], sorted(p["attributes"])) for p in people] == [
        ("u2", ["segflow_synced_at", "segment_reasons"])
    ]


def test_a_bad_setting_value_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("SEGFLOW_SYNC_SEGMENT_REASONS", "maybe")
    with pytest.raises(Exception, match="SEGFLOW_SYNC_SEGMENT_REASONS"):
        Settings.from_env()
