"""Privacy requests: deleted and suppressed people vanish from derived tables and from the
three fake destinations, are audited, and are never sent again."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import requests as http
from support.sync_inputs import write_inputs

from orchestration.activation.destinations import (
    CustomerIODestination,
    IntercomDestination,
    LaunchDarklyDestination,
    RetryPolicy,
)
from orchestration.activation.fake_customerio import FakeConfig, FakeCustomerIO
from orchestration.activation.fake_intercom import FakeIntercom
from orchestration.activation.fake_launchdarkly import FakeLaunchDarkly
from orchestration.activation.privacy import (
    PrivacyInputError,
    PrivacyRequest,
    apply_requests,
    pending,
    read_landing_file,
)
from orchestration.activation.sync import SyncOptions, sync

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2 = date(2025, 7, 1), date(2025, 7, 2)
OPTIONS = SyncOptions(max_change_share=1.0)
FAST = {"retry": RetryPolicy(max_retries=2, base_delay=0.001), "timeout": (2.0, 2.0)}
USERS = {f"u{i}": ["trial"] if i % 2 else ["trial", "power_user"] for i in range(6)}


def frames(day: date) -> dict[str, pd.DataFrame]:
    return {
        "user_segments": pd.DataFrame(
            [{"user_id": u, "segment_date": day, "segments": s} for u, s in USERS.items()]
        ),
        "segment_membership": pd.DataFrame(
            [
                {"user_id": u, "segment": "trial", "entered_at": day, "exited_at": None}
                for u in USERS
            ]
        ),
    }


@pytest.fixture
def fakes():
    with (
        FakeCustomerIO(FakeConfig(site_id="s", api_key="k")) as cio,
        FakeLaunchDarkly(token="ld") as ld,
        FakeIntercom(token="ic") as ic,
    ):
        yield cio, ld, ic


def destinations(fakes) -> list:
    cio, ld, ic = fakes
    return [
        CustomerIODestination(base_url=cio.url, site_id="s", api_key="k", rate_limit=0, **FAST),
        LaunchDarklyDestination(base_url=ld.url, access_token="ld", rate_limit=0, **FAST),
        IntercomDestination(
            base_url=ic.url, access_token="ic", rate_limit=0, create_contacts=True, **FAST
        ),
    ]


def test_delete_and_suppress_everywhere_audited_and_never_resent(tmp_path, fakes):
    cio, ld, ic = fakes
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_inputs(conn, **frames(DAY1))
    conn.execute("create schema raw")
    conn.execute("create table raw.events as select unnest(['u1','u1','u2','u3']) as user_id")
    for dest in destinations(fakes):
        assert sync(conn, dest, options=OPTIONS).status == "ok"
    assert "u1" in cio.people and "u1" in ld.members("segflow-trial")

    requests = [PrivacyRequest("u1", "delete", "gdpr art. 17"), PrivacyRequest("u2", "suppress")]
    audit = apply_requests(conn, requests, destinations(fakes), raw_policy="redact")

    person_column = {
        "user_segments": "user_id",
        "segment_membership": "user_id",
        "sync_state": "person_id",
        "sync_acked_events": "person_id",
    }
    for table, column in person_column.items():
        sql = f"select count(*) from {table} where {column} in ('u1', 'u2')"
        assert conn.execute(sql).fetchone() == (0,), table
    assert sorted(r[0] for r in conn.execute("select user_id from raw.events").fetchall()) == [
        "u2",  # suppress keeps raw rows (not an erasure); delete redacts them
        "u3",
    ]
    # a delete is also suppressed, so another tool's identify cannot re-create the person
    assert "u1" not in cio.people and "u2" not in cio.people and cio.suppressed == {"u1", "u2"}
    identify = {"type": "person", "identifiers": {"id": "u1"}, "action": "identify"}
    reply = http.post(
        f"{cio.url}/api/v2/batch", json={"batch": [identify]}, auth=("s", "k"), timeout=5
    )
    assert reply.status_code == 200 and "u1" not in cio.people
    assert not {"u1", "u2"} & (ld.members("segflow-trial") | ld.members("segflow-power_user"))
    contacts = ic.by_external_id()
    assert "u1" not in contacts and contacts["u2"]["archived"] is True
    targets = {(r["user_id"], r["target"], r["outcome"]) for r in audit}
    for user in ("u1", "u2"):
        for name in ("customerio", "launchdarkly", "intercom"):
            assert (user, f"destination:{name}", "removed") in targets
    assert ("u1", "warehouse:main.user_segments", "removed") in targets
    assert ("u1", "warehouse:raw.events", "removed") in targets
    assert conn.execute("select count(*) from privacy_audit").fetchone()[0] == len(audit)

    # the warehouse is rebuilt from sources that still hold them: the next sync skips them
    write_inputs(conn, **frames(DAY2))
    cio_before, ld_before = len(cio.received_items), len(ld.patches)
    for dest in destinations(fakes):
        report = sync(conn, dest, options=OPTIONS)
        assert report.status == "ok" and report.people_suppressed == 2
    sent_cio = {i["identifiers"]["id"] for i in cio.received_items[cio_before:]}
    sent_ld = {v for p in ld.patches[ld_before:] for i in p["instructions"] for v in i["values"]}
    assert not {"u1", "u2"} & (sent_cio | sent_ld)
    assert "u1" not in ic.by_external_id() and not any(
        e["user_id"] in ("u1", "u2") and e["created_at"] >= 1751414400 for e in ic.events
    )
    conn.close()


def test_landing_file_rows_validated_and_applied_once(tmp_path):
    path = tmp_path / "privacy_requests.csv"
    path.write_text("user_id,action,reason\nu1,delete,asked by mail\nu2,suppress,\n")
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    requests = read_landing_file(path)
    assert [(r.user_id, r.action, r.source) for r in requests] == [
        ("u1", "delete", "privacy_requests.csv"),
        ("u2", "suppress", "privacy_requests.csv"),
    ]
    apply_requests(conn, pending(conn, requests), [])
    assert pending(conn, requests) == []  # already processed
    path.write_text("user_id,action\nu3,erase\n")
    with pytest.raises(PrivacyInputError, match="row 2: column action='erase'"):
        read_landing_file(path)
    conn.close()


def test_cli_privacy_suppress_writes_the_audit(tmp_path):
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        write_inputs(conn, **frames(DAY1))
    env = {
        **os.environ,
        "SEGFLOW_HOME": str(tmp_path),
        "SEGFLOW_DUCKDB_PATH": str(db),
        "SEGFLOW_DESTINATIONS": "outbox",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "privacy", "suppress", "u3", "u4"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "privacy suppress: 2 people" in proc.stdout
    with duckdb.connect(str(db)) as conn:
        assert conn.execute(
            "select count(*) from user_segments where user_id in ('u3','u4')"
        ).fetchone() == (0,)
        assert conn.execute("select count(*) from privacy_suppressions").fetchone() == (2,)
