"""Sync to Intercom (contacts' custom attributes, tags per segment, data events) against the
fake over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support.sync_inputs import write_inputs

from orchestration.activation.destinations import IntercomDestination, RetryPolicy
from orchestration.activation.fake_http import FaultConfig
from orchestration.activation.fake_intercom import FakeIntercom
from orchestration.activation.sync import SyncOptions, sync

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2, DAY3 = date(2025, 5, 5), date(2025, 5, 6), date(2025, 5, 7)
TOKEN = "ic-sync-secret-5"
OPTIONS = SyncOptions(max_change_share=1.0)


def inputs(day: date, users: dict[str, list[str]], churn: float = 0.25) -> dict:
    seg = pd.DataFrame(
        [
            {
                "user_id": u,
                "segment_date": day,
                "segments": s,
                "primary_segment": s[0] if s else None,
                "onboarding_flow": f"flow_{s[0]}" if s else None,
                "next_block": "invite_teammate",
            }
            for u, s in users.items()
        ]
    )
    scores = pd.DataFrame(
        [
            {"user_id": u, "score_date": day, "churn_probability": churn, "churn_band": "low"}
            for u in users
        ]
    )
    entered = pd.DataFrame(
        [
            {"user_id": u, "segment": s[-1], "entered_at": day, "exited_at": None}
            for u, s in users.items()
            if s
        ]
    )
    return {"user_segments": seg, "user_scores": scores, "segment_membership": entered}


def expected_contact(segments: list[str], churn: float = 0.25) -> dict:
    return {
        "custom_attributes": {
            "segments": ",".join(sorted(segments)),
            "primary_segment": segments[0],
            "onboarding_flow": f"flow_{segments[0]}",
            "next_block": "invite_teammate",
            "churn_probability": churn,
            "churn_band": "low",
        },
        "tags": {f"segflow-{s}" for s in segments},
        "archived": False,
    }


def stored(fake: FakeIntercom) -> dict:
    out = {}
    for user, contact in fake.by_external_id().items():
        contact["custom_attributes"].pop("segflow_synced_at", None)
        out[user] = contact
    return out


def destination(fake: FakeIntercom, **kw) -> IntercomDestination:
    params = {
        "base_url": fake.url,
        "access_token": TOKEN,
        "rate_limit": 0,
        "retry": RetryPolicy(max_retries=4, base_delay=0.001),
        "timeout": (2.0, 2.0),
        "create_contacts": True,
    }
    return IntercomDestination(**(params | kw))


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield connection
    connection.close()


DAY1_USERS = {f"u{i}": ["trial"] if i % 2 else ["trial", "power_user"] for i in range(6)}
DAY2_USERS = {**DAY1_USERS, "u0": ["trial"], "u1": ["activated"], "u6": ["trial"]}


def test_three_runs_attributes_tags_events_then_nothing(conn):
    with FakeIntercom(token=TOKEN) as fake:
        write_inputs(conn, **inputs(DAY1, DAY1_USERS))
        first = sync(conn, destination(fake), options=OPTIONS)
        assert first.status == "ok", first.failures_by_reason
        assert stored(fake) == {u: expected_contact(s) for u, s in DAY1_USERS.items()}
        events = {(e["user_id"], e["event_name"], e["metadata"]["segment"]) for e in fake.events}
        assert events == {(u, "segment_entered", s[-1]) for u, s in DAY1_USERS.items()}
        day_start = int(datetime(2025, 5, 5, tzinfo=UTC).timestamp())
        assert all(day_start <= e["created_at"] < day_start + 86_400 for e in fake.events)

        write_inputs(conn, **inputs(DAY2, DAY2_USERS))
        second = sync(conn, destination(fake), options=OPTIONS)
        assert second.status == "ok" and second.people_sent == 3
        assert stored(fake) == {u: expected_contact(s) for u, s in DAY2_USERS.items()}
        assert len(fake.events) == 6 + 7  # day-2 entries for every member (new day, new event)

        requests = fake.request_count
        write_inputs(conn, **{**inputs(DAY3, DAY2_USERS), "segment_membership": None})
        third = sync(conn, destination(fake), options=OPTIONS)
        assert third.requests == 0 and fake.request_count == requests


def test_identity_external_id_then_email_else_unmatched(conn):
    with FakeIntercom(token=TOKEN) as fake:
        fake.add_contact(external_id="u0")
        by_mail = fake.add_contact(email="u1@example.com")
        users = {"u0": ["trial"], "u1": ["trial"], "u2": ["trial"]}
        write_inputs(conn, **inputs(DAY1, users))
        conn.execute(
            "create table main.dim_users as select * from (values ('u1', 'u1@example.com'), "
            "('u2', null)) t(user_id, email)"
        )
        report = sync(conn, destination(fake, create_contacts=False), options=OPTIONS)
        assert report.status == "partial"
        assert report.failures_by_reason == {"unmatched_contact": 2}  # u2: person + event
        assert set(stored(fake)) == {"u0", "u1"} and len(fake.contacts) == 2
        assert fake.contacts[by_mail]["external_id"] == "u1"  # matched by e-mail, id attached
        created = sync(conn, destination(fake, create_contacts=True), options=OPTIONS)
        assert created.status == "ok" and set(stored(fake)) == {"u0", "u1", "u2"}
        assert created.destination_facts["contacts_created"] == 1


def test_oversize_string_attribute_truncated_others_sent(conn):
    with FakeIntercom(token=TOKEN) as fake:
        frames = inputs(DAY1, {"u0": ["trial"]})
        frames["user_segments"].loc[0, "next_block"] = ",".join(f"block_{i:03d}" for i in range(40))
        write_inputs(conn, **frames)
        report = sync(conn, destination(fake), options=OPTIONS)
        assert report.status == "ok" and report.oversize.truncated == 1
        attrs = stored(fake)["u0"]["custom_attributes"]
        assert len(attrs["next_block"]) <= 255 and attrs["next_block"].endswith("block_024")
        assert attrs["churn_band"] == "low" and stored(fake)["u0"]["tags"] == {"segflow-trial"}


def test_429_with_reset_header_and_5xx_nothing_lost_or_doubled(conn):
    faults = FaultConfig(rate_limit=15, rate_window_s=0.3, forced_statuses=[500, 503, 502])
    with FakeIntercom(token=TOKEN, faults=faults) as fake:
        write_inputs(conn, **inputs(DAY1, DAY1_USERS))
        report = sync(conn, destination(fake, max_items_per_batch=4), options=OPTIONS)
        assert report.status == "ok"
        assert stored(fake) == {u: expected_contact(s) for u, s in DAY1_USERS.items()}
        assert fake.status_counts["429"] >= 1 and fake.status_counts["500"] == 1
        assert len(fake.events) == 6 and fake.event_receipts == 6


RUN_ONE_SYNC = """
import sys, duckdb
from orchestration.activation.destinations import IntercomDestination
from orchestration.activation.sync import SyncOptions, sync
conn = duckdb.connect(sys.argv[1])
dest = IntercomDestination(base_url=sys.argv[2], rate_limit=0, max_items_per_batch=3,
                           max_in_flight=1, create_contacts=True)
sync(conn, dest, options=SyncOptions(max_change_share=1.0))
print("finished without being killed")
"""


def test_client_killed_mid_batch_rerun_completes_nothing_doubled(tmp_path):
    db = tmp_path / "w.duckdb"
    users = {f"k{i:02d}": ["trial"] if i % 2 else ["paying", "trial"] for i in range(20)}
    with duckdb.connect(str(db)) as conn:
        write_inputs(conn, **inputs(DAY1, users))
    with FakeIntercom(token=TOKEN) as fake:
        env = {**os.environ, "INTERCOM_ACCESS_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_ONE_SYNC, str(db), fake.url],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        fake.on_kill = proc.kill
        fake.configure(kill_after_requests=40)  # in the middle of a batch of contacts
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == -9, (proc.returncode, out, err[-2000:])
        assert 0 < len(fake.contacts) < 20
        with duckdb.connect(str(db)) as conn:
            report = sync(conn, destination(fake), options=OPTIONS)
        assert report.status == "ok"
        assert stored(fake) == {u: expected_contact(s) for u, s in users.items()}
        assert len(fake.contacts) == 20  # no contact created twice
        keys = [(e["user_id"], e["event_name"], json.dumps(e["metadata"])) for e in fake.events]
        assert len(keys) == len(set(keys)) == 20  # every entry event once
