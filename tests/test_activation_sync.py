"""Sync behaviour against the fake Customer.io over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import time
from datetime import date

import duckdb
import pandas as pd
import pytest
from support.sync_inputs import write_inputs

from orchestration.activation.destinations import (
    CsvDestination,
    CustomerIODestination,
    DestinationAuthError,
    OutboxDestination,
    RetryPolicy,
)
from orchestration.activation.fake_customerio import FakeConfig, FakeCustomerIO
from orchestration.activation.sync import SyncOptions, sync

DAY1 = date(2025, 3, 10)
DAY2 = date(2025, 3, 11)
SITE, KEY = "site-123", "sk-very-secret-key-9f8e7d"


def segments_frame(day: date, users: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "user_id": u,
                "segment_date": day,
                "segments": segs,
                "primary_segment": segs[0] if segs else None,
                "onboarding_flow": "flow_a",
                "experiment": "exp1",
                "experiment_variant": "control",
                "next_block": "invite",
            }
            for u, segs in users.items()
        ]
    )


def scores_frame(day: date, churn: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "user_id": u,
                "score_date": day,
                "churn_probability": p,
                "churn_band": "low",
                "ltv_pred": 250.4,
                "ltv_band": "mid",
                "conversion_probability": None,
                "churn_reasons": "low_activity",
                "ltv_reasons": "plan",
                "churn_model_version": "7",
                "ltv_model_version": "3",
                "conversion_model_version": "1",
            }
            for u, p in churn.items()
        ]
    )


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def fake():
    with FakeCustomerIO(FakeConfig(site_id=SITE, api_key=KEY)) as server:
        yield server


def destination(fake: FakeCustomerIO, **kw) -> CustomerIODestination:
    params = {
        "base_url": fake.url,
        "site_id": SITE,
        "api_key": KEY,
        "rate_limit": 0,
        "retry": RetryPolicy(max_retries=4, base_delay=0.001),
        "timeout": (2.0, 2.0),
    }
    params.update(kw)
    return CustomerIODestination(**params)


def batch_posts(fake: FakeCustomerIO) -> list[dict]:
    return [r for r in fake.request_log if r["path"] == "/api/v2/batch"]


def test_first_sync_payload_and_no_change_rerun_sends_nothing(conn, fake):
    users = {f"u{i}": ["activated", "power_user"] if i % 2 else ["new_user"] for i in range(10)}
    write_inputs(
        conn,
        user_segments=segments_frame(DAY1, users),
        user_scores=scores_frame(DAY1, {u: 0.123456 for u in users}),
    )
    first = sync(conn, destination(fake))
    assert first.status == "ok" and first.people_new == 10 and first.people_succeeded == 10
    assert set(fake.people) == set(users)
    person = fake.people["u1"]
    synced_at = person.pop("segflow_synced_at")
    assert isinstance(synced_at, int) and synced_at > 1_600_000_000
    assert person == {
        "segment_activated": True,
        "segment_power_user": True,
        "segments": "activated,power_user",
        "primary_segment": "activated",
        "onboarding_flow": "flow_a",
        "experiment": "exp1",
        "experiment_variant": "control",
        "next_block": "invite",
        "churn_probability": 0.12,
        "churn_band": "low",
        "ltv_pred": 250,
        "ltv_band": "mid",  # reason codes go out only in the high band (reason_text.py)
        "churn_model_version": "7",
        "ltv_model_version": "3",
        "conversion_model_version": "1",
    }
    requests_before = fake.request_count
    second = sync(conn, destination(fake))
    assert second.status == "ok"
    assert (second.people_unchanged, second.people_sent, second.requests) == (10, 0, 0)
    assert fake.request_count == requests_before  # not even a credential check


def test_one_changed_person_sends_one_item_with_only_changed_attributes(conn, fake):
    users = {f"u{i}": ["activated"] for i in range(20)}
    churn = {u: 0.2 for u in users}
    write_inputs(
        conn, user_segments=segments_frame(DAY1, users), user_scores=scores_frame(DAY1, churn)
    )
    sync(conn, destination(fake))
    churn["u7"] = 0.91
    churn["u8"] = 0.2004  # below the 2 dp precision: must not count as a change
    write_inputs(conn, user_scores=scores_frame(DAY1, churn))
    items_before = len(fake.received_items)
    posts_before = len(batch_posts(fake))
    report = sync(conn, destination(fake))
    assert (report.people_changed, report.people_sent, report.people_unchanged) == (1, 1, 19)
    assert len(batch_posts(fake)) - posts_before == 1
    sent = fake.received_items[items_before:]
    assert len(sent) == 1 and sent[0]["identifiers"] == {"id": "u7"}
    assert set(sent[0]["attributes"]) == {"churn_probability", "segflow_synced_at"}
    assert fake.people["u7"]["churn_probability"] == 0.91
    assert fake.people["u7"]["segment_activated"] is True  # merge kept the rest


def test_leaving_all_segments_or_disappearing_clears_attributes(conn, fake):
    write_inputs(
        conn,
        user_segments=segments_frame(
            DAY1, {"a": ["trial", "at_risk"], "b": ["trial"], "c": ["trial"]}
        ),
        user_scores=scores_frame(DAY1, {"a": 0.5, "b": 0.5, "c": 0.5}),
        segment_membership=pd.DataFrame(
            [{"user_id": "a", "segment": "trial", "entered_at": DAY1, "exited_at": None}]
        ),
    )
    sync(conn, destination(fake))
    assert fake.people["a"]["segment_at_risk"] is True
    write_inputs(
        conn,
        user_segments=segments_frame(DAY2, {"a": [], "c": ["trial"]}),
        user_scores=scores_frame(DAY2, {"a": 0.5, "c": 0.5}),
        segment_membership=pd.DataFrame(
            [{"user_id": "a", "segment": "trial", "entered_at": DAY1, "exited_at": DAY2}]
        ),
    )
    report = sync(conn, destination(fake), as_of=DAY2, options=SyncOptions(max_change_share=1.0))
    assert report.people_cleared == 2 and report.people_unchanged == 1
    for person in ("a", "b"):  # a left every segment, b vanished from user_segments
        assert set(fake.people[person]) == {"segflow_synced_at"}, fake.people[person]
    assert fake.people["c"]["segment_trial"] is True
    names = sorted((e["person_id"], e["name"]) for e in fake.events.values())
    assert names == [("a", "segment_entered"), ("a", "segment_exited")]
    again = sync(conn, destination(fake), as_of=DAY2)
    assert again.people_sent == 0 and again.events_sent == 0


def test_dry_run_reports_changes_and_sends_and_writes_nothing(conn, fake):
    write_inputs(conn, user_segments=segments_frame(DAY1, {"a": ["trial"], "b": ["trial"]}))
    report = sync(conn, destination(fake), dry_run=True)
    assert report.status == "dry_run" and report.people_new == 2 and report.requests == 0
    assert fake.request_count == 0
    assert report.samples[0]["attributes"]["segment_trial"] is True
    tables = {
        r[0] for r in conn.execute("select table_name from information_schema.tables").fetchall()
    }
    assert not tables & {"sync_state", "sync_runs", "sync_failures"}


def test_circuit_breaker_trips_above_threshold_and_override_sends(conn, fake):
    users = {f"u{i:02d}": ["trial"] for i in range(10)}
    write_inputs(conn, user_segments=segments_frame(DAY1, users))
    options = SyncOptions(max_change_share=0.5)
    assert sync(conn, destination(fake), options=options).people_succeeded == 10  # first: exempt
    moved = {u: (["paying"] if int(u[1:]) < 5 else ["trial"]) for u in users}  # 5/10 = 0.5
    write_inputs(conn, user_segments=segments_frame(DAY1, moved))
    at_threshold = sync(conn, destination(fake), options=options)
    assert at_threshold.status == "ok" and at_threshold.people_changed == 5
    moved = {u: (["churned"] if int(u[1:]) < 6 else ["trial"]) for u in users}  # 6/10 > 0.5
    write_inputs(conn, user_segments=segments_frame(DAY1, moved))
    posts = len(batch_posts(fake))
    tripped = sync(conn, destination(fake), options=options)
    assert tripped.status == "breaker_tripped" and tripped.breaker["share"] == 0.6
    assert len(batch_posts(fake)) == posts and "segment_churned" not in fake.people["u00"]
    with pytest.raises(RuntimeError, match="circuit breaker"):
        tripped.raise_if_blocked()
    forced = sync(conn, destination(fake), options=options, override_breaker=True)
    assert forced.status == "ok" and forced.people_changed == 6
    assert fake.people["u00"]["segment_churned"] is True


def test_breaker_counts_targeting_changes_not_scores_only(conn, fake):
    """A day where only scores (and model versions) move is sent but does not trip the
    breaker; the same share of people changing segments does."""
    users = {f"u{i:02d}": ["trial"] for i in range(10)}
    churn = {u: 0.10 for u in users}
    write_inputs(
        conn, user_segments=segments_frame(DAY1, users), user_scores=scores_frame(DAY1, churn)
    )
    options = SyncOptions(max_change_share=0.5)
    assert sync(conn, destination(fake), options=options).people_succeeded == 10  # first: exempt
    jitter = {u: (0.10 + 0.01 * (i + 1) if i < 7 else 0.10) for i, u in enumerate(users)}
    scores = scores_frame(DAY1, jitter)
    scores.loc[:6, "churn_model_version"] = "8"  # a new champion for the same 7 people
    write_inputs(conn, user_scores=scores)
    items_before = len(fake.received_items)
    day = sync(conn, destination(fake), options=options)
    assert day.status == "ok", day.message
    assert (day.people_changed, day.people_changed_scores_only, day.people_sent) == (7, 7, 7)
    assert day.breaker["would_change"] == 0 and day.breaker["scores_only_not_counted"] == 7
    sent = fake.received_items[items_before:]
    assert sorted(item["identifiers"]["id"] for item in sent) == sorted(users)[:7]
    assert all(
        set(item["attributes"]) == {"churn_probability", "churn_model_version", "segflow_synced_at"}
        for item in sent
    )
    assert fake.people["u06"]["churn_probability"] == 0.17
    row = conn.execute(
        "select people_changed, people_changed_scores_only from sync_runs "
        "order by started_at desc limit 1"
    ).fetchone()
    assert row == (7, 7)
    assert day.to_metadata()["people_changed_scores_only"] == 7

    # 6 of 10 change segment (and all 10 get new scores): the segment changes trip it
    moved = {u: (["churned"] if i < 6 else ["trial"]) for i, u in enumerate(users)}
    write_inputs(
        conn,
        user_segments=segments_frame(DAY1, moved),
        user_scores=scores_frame(DAY1, {u: 0.5 for u in users}),
    )
    items_before = len(fake.received_items)
    tripped = sync(conn, destination(fake), options=options)
    assert tripped.status == "breaker_tripped", tripped.message
    assert (tripped.people_changed, tripped.people_changed_scores_only) == (10, 4)
    assert tripped.breaker["would_change"] == 6 and tripped.breaker["share"] == 0.6
    assert "4 more changed scores only" in tripped.message
    assert len(fake.received_items) == items_before


def test_backfill_of_past_date_sends_nothing(conn, fake):
    frame = pd.concat(
        [segments_frame(DAY1, {"a": ["trial"]}), segments_frame(DAY2, {"a": ["paying"]})]
    )
    write_inputs(conn, user_segments=frame)
    report = sync(conn, destination(fake), as_of=DAY1)
    assert report.status == "skipped_backfill" and report.people_sent == 0
    assert fake.request_count == 0
    status = conn.execute("select status from sync_runs").fetchall()
    assert status == [("skipped_backfill",)]
    assert conn.execute("select count(*) from sync_state").fetchone()[0] == 0


def test_bad_credentials_fail_fast_without_leaking_the_key(conn, fake, caplog, capsys):
    write_inputs(conn, user_segments=segments_frame(DAY1, {"a": ["trial"]}))
    wrong_key = "sk-WRONG-secret-0000"
    caplog.set_level(logging.DEBUG)
    started = time.perf_counter()
    with pytest.raises(DestinationAuthError) as excinfo:
        sync(conn, destination(fake, api_key=wrong_key))
    assert time.perf_counter() - started < 2.0
    message = str(excinfo.value)
    assert "401" in message and "CUSTOMERIO_API_KEY" in message
    assert batch_posts(fake) == []  # only the credential check reached the server
    out = capsys.readouterr()
    logged = conn.execute("select message from sync_runs").fetchone()[0]
    everything = " ".join([message, repr(excinfo.value), caplog.text, out.out, out.err, logged])
    assert wrong_key not in everything and KEY not in everything
    assert conn.execute("select status from sync_runs").fetchone()[0] == "auth_failed"
    assert conn.execute("select count(*) from sync_state").fetchone()[0] == 0


def test_missing_credentials_name_the_variable(monkeypatch):
    monkeypatch.delenv("CUSTOMERIO_SITE_ID", raising=False)
    monkeypatch.delenv("CUSTOMERIO_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CUSTOMERIO_SITE_ID"):
        CustomerIODestination(base_url="http://127.0.0.1:9")
    monkeypatch.setenv("CUSTOMERIO_SITE_ID", "s")
    monkeypatch.setenv("CUSTOMERIO_API_KEY", "k-from-env")
    dest = CustomerIODestination(base_url="http://127.0.0.1:9")
    assert "k-from-env" not in repr(dest)


def test_whole_batch_413_is_split_until_it_fits(conn, fake):
    users = {f"u{i}": ["trial"] for i in range(16)}
    write_inputs(conn, user_segments=segments_frame(DAY1, users))
    fake.configure(max_request_bytes=700, oversize_status=413)
    report = sync(conn, destination(fake, max_batch_bytes=400_000))
    assert report.people_succeeded == 16 and report.batch_splits >= 3
    assert set(fake.people) == set(users)


def test_207_marks_only_listed_rows_and_gives_up_after_max_attempts(conn, fake):
    users = {f"u{i}": ["trial"] for i in range(6)}
    write_inputs(conn, user_segments=segments_frame(DAY1, users))
    fake.configure(fail_ids={"u3"})
    options = SyncOptions(max_attempts=2)
    first = sync(conn, destination(fake), options=options)
    assert (first.people_succeeded, first.people_failed) == (5, 1)
    row = first.failed_rows.iloc[0]
    assert (row.item_key, row.reason, row.field, bool(row.given_up)) == (
        "u3",
        "invalid",
        "identifiers.id",
        False,
    )
    second = sync(conn, destination(fake), options=options)
    assert second.people_sent == 1 and second.items_given_up == 1 and second.items_retried == 1
    third = sync(conn, destination(fake), options=options)
    assert third.people_sent == 0 and third.items_skipped_given_up == 1
    stored = conn.execute("select attempts, given_up, last_message from sync_failures").fetchone()
    assert stored[0] == 2 and stored[1] is True and "fail_ids" in stored[2]


def test_retry_after_is_honoured_on_429(conn, fake):
    write_inputs(conn, user_segments=segments_frame(DAY1, {"a": ["trial"]}))
    fake.configure(forced_statuses=[429, 429], retry_after=2)
    slept: list[float] = []
    report = sync(conn, destination(fake, sleep=slept.append))
    # the credential check gets the first 429, the batch the second
    assert slept == [2.0, 2.0] and report.people_succeeded == 1


def test_local_limit_violations_fail_the_row_without_sending(conn, fake):
    frame = segments_frame(DAY1, {"ok": ["trial"], "x" * 151: ["trial"]})
    write_inputs(conn, user_segments=frame)
    report = sync(conn, destination(fake))
    assert set(fake.people) == {"ok"} and report.items_failed_locally == 1
    reasons = {
        r.item_key[:5]: (r.reason, r.field, r.message) for r in report.failed_rows.itertuples()
    }
    assert reasons["xxxxx"][1] == "identifiers.id" and "150 bytes" in reasons["xxxxx"][2]
    assert all(item["identifiers"]["id"] == "ok" for item in fake.received_items)


def test_oversize_value_is_truncated_alone_and_the_person_still_sent(conn, fake):
    """Oversize rule: a text value over 1000 bytes is cut (at the last ',' that fits); the
    person's other attributes go out; counted in the report / metadata."""
    frame = segments_frame(DAY1, {"ok": ["trial"], "big": ["trial"]})
    long_flow = ",".join(f"step_{i:04d}" for i in range(200))  # 1999 bytes
    frame.loc[frame.user_id == "big", "onboarding_flow"] = long_flow
    write_inputs(conn, user_segments=frame, user_scores=scores_frame(DAY1, {"big": 0.5}))
    report = sync(conn, destination(fake))
    assert report.status == "ok" and report.items_failed_locally == 0
    big = fake.people["big"]
    assert big["churn_probability"] == 0.5 and big["next_block"] == "invite"
    assert big["segment_trial"] is True and big["churn_band"] == "low"
    sent = big["onboarding_flow"]
    assert len(sent.encode()) <= 1000 and long_flow.startswith(sent) and sent.endswith("_0099")
    meta = report.to_metadata()
    assert (meta["attributes_truncated"], meta["attributes_dropped"]) == (1, 0)
    assert meta["oversize_by_attribute"] == {"onboarding_flow": 1}
    again = sync(conn, destination(fake))  # the truncated value is not re-sent every run
    assert again.people_sent == 0


def test_outbox_holds_exactly_the_batches_and_next_run_only_changes(conn, tmp_path):
    users = {f"u{i}": ["trial"] for i in range(5)}
    write_inputs(conn, user_segments=segments_frame(DAY1, users))
    outbox = OutboxDestination(tmp_path / "outbox", max_items_per_batch=2)
    report = sync(conn, outbox)
    lines = (tmp_path / "outbox").glob("*.jsonl")
    bodies = [json.loads(line) for path in lines for line in path.read_text().splitlines()]
    assert [len(b["batch"]) for b in bodies] == [2, 2, 1] and report.people_succeeded == 5
    assert {b["identifiers"]["id"] for body in bodies for b in body["batch"]} == set(users)
    users["u2"] = ["paying"]
    write_inputs(conn, user_segments=segments_frame(DAY1, users))
    second = sync(conn, OutboxDestination(tmp_path / "outbox"))
    newest = max((tmp_path / "outbox").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    (body,) = [json.loads(line) for line in newest.read_text().splitlines()]
    assert second.people_changed == 1
    assert body["batch"][0]["attributes"] | {"segflow_synced_at": 0} == {
        "segment_paying": True,
        "segment_trial": "",
        "segments": "paying",
        "primary_segment": "paying",
        "segflow_synced_at": 0,
    }


def test_outbox_lines_are_durable_before_their_acknowledgement_is_journaled(
    conn, tmp_path, monkeypatch
):
    """The outbox's crash contract: an item is journaled as acknowledged (so a re-run will not
    send it again) only after its request line was fsynced, whatever the fsync schedule."""
    import os

    from orchestration.activation import state

    users = {f"u{i:02d}": ["trial"] for i in range(40)}
    write_inputs(conn, user_segments=segments_frame(DAY1, users))
    order: list[tuple[str, object]] = []
    real_fsync, real_append = os.fsync, state.append_journal

    def fsync(fd: int) -> None:
        size = os.fstat(fd).st_size
        real_fsync(fd)
        order.append(("durable", size))

    def append(conn, destination, run_id, rows, now):
        order.append(("journal", [r["item_key"] for r in rows if r["ok"]]))
        real_append(conn, destination, run_id, rows, now)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(state, "append_journal", append)
    report = sync(conn, OutboxDestination(tmp_path / "outbox", max_items_per_batch=2))
    (path,) = (tmp_path / "outbox").glob("*.jsonl")
    line_end, offset = {}, 0
    for line in path.read_bytes().splitlines(keepends=True):
        offset += len(line)
        line_end.update({i["identifiers"]["id"]: offset for i in json.loads(line)["batch"]})
    durable, journaled = 0, []
    for kind, value in order:
        if kind == "durable":
            durable = max(durable, value)
        else:
            journaled += value
            assert all(line_end[key] <= durable for key in value), (durable, value)
    assert sorted(journaled) == sorted(users) and report.people_succeeded == 40
    assert durable == path.stat().st_size  # the whole file is durable when the run ends


def test_csv_export_writes_people_and_events(conn, tmp_path):
    write_inputs(
        conn,
        user_segments=segments_frame(DAY1, {"a": ["trial"], "b": ["paying"]}),
        user_triggers=pd.DataFrame(
            [
                {
                    "user_id": "a",
                    "trigger": "trial_ending",
                    "fired_at": DAY1,
                    "context": '{"days": 3}',
                }
            ]
        ),
    )
    report = sync(conn, CsvDestination(tmp_path / "csv"))
    people = pd.read_csv(report.destination_facts["people_csv"], dtype=str, keep_default_na=False)
    assert sorted(people["id"]) == ["a", "b"]
    assert people.set_index("id").loc["a", "segment_trial"] == "true"
    events = pd.read_csv(f"{report.destination_facts['csv_dir']}/events.csv")
    assert list(events["name"]) == ["trial_ending"] and json.loads(events["data_json"][0]) == {
        "days": 3
    }
