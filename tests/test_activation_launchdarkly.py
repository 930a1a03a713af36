"""Sync to LaunchDarkly list-based segments against the fake over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support.sync_inputs import write_inputs

from orchestration.activation.destinations import (
    DestinationAuthError,
    LaunchDarklyDestination,
    RetryPolicy,
)
from orchestration.activation.fake_http import FaultConfig
from orchestration.activation.fake_launchdarkly import FakeLaunchDarkly
from orchestration.activation.sync import SyncOptions, sync

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2, DAY3 = date(2025, 4, 1), date(2025, 4, 2), date(2025, 4, 3)
TOKEN = "api-ld-secret-77"
OPTIONS = SyncOptions(max_change_share=1.0)  # the test days change most people on purpose


def segments(day: date, users: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"user_id": u, "segment_date": day, "segments": s} for u, s in users.items()]
    )


def destination(fake: FakeLaunchDarkly, **kw) -> LaunchDarklyDestination:
    params = {
        "base_url": fake.url,
        "access_token": TOKEN,
        "rate_limit": 0,
        "retry": RetryPolicy(max_retries=4, base_delay=0.001),
        "timeout": (2.0, 2.0),
    }
    return LaunchDarklyDestination(**(params | kw))


def expected(users: dict[str, list[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for user, segs in users.items():
        for seg in segs:
            out.setdefault(f"segflow-{seg}", set()).add(user)
    return out


def members(fake: FakeLaunchDarkly) -> dict[str, set[str]]:
    return {key: m for (_, key) in fake.segments if (m := fake.members(key))}


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield connection
    connection.close()


DAY1_USERS = {f"u{i}": ["trial"] if i % 3 else ["trial", "power_user"] for i in range(12)}
DAY2_USERS = {
    **{f"u{i}": ["trial"] for i in range(6)},  # u0, u3 leave power_user
    **{f"u{i}": ["activated"] for i in range(6, 10)},  # leave trial, enter activated
    "u12": ["power_user"],  # new; u10, u11 disappear
}


def test_three_runs_add_remove_then_nothing(conn):
    with FakeLaunchDarkly(token=TOKEN) as fake:
        write_inputs(conn, user_segments=segments(DAY1, DAY1_USERS))
        first = sync(conn, destination(fake), options=OPTIONS)
        assert first.status == "ok" and members(fake) == expected(DAY1_USERS)
        assert sorted(destination(fake).segment_key(s) for s in ("power_user", "trial")) == sorted(
            p["segment"] for p in fake.patches
        )
        write_inputs(conn, user_segments=segments(DAY2, DAY2_USERS))
        before = len(fake.patches)
        second = sync(conn, destination(fake), options=OPTIONS)
        assert second.status == "ok" and members(fake) == expected(DAY2_USERS)
        ops = {
            (p["segment"], i["kind"], v)
            for p in fake.patches[before:]
            for i in p["instructions"]
            for v in i["values"]
        }
        assert ops == {
            ("segflow-power_user", "removeIncludedTargets", "u0"),
            ("segflow-power_user", "removeIncludedTargets", "u3"),
            ("segflow-power_user", "removeIncludedTargets", "u6"),
            ("segflow-power_user", "removeIncludedTargets", "u9"),
            ("segflow-power_user", "addIncludedTargets", "u12"),
            *{("segflow-trial", "removeIncludedTargets", f"u{i}") for i in range(6, 12)},
            *{("segflow-activated", "addIncludedTargets", f"u{i}") for i in range(6, 10)},
        }
        requests = fake.request_count
        write_inputs(conn, user_segments=segments(DAY3, DAY2_USERS))
        third = sync(conn, destination(fake), options=OPTIONS)
        assert third.requests == 0 and fake.request_count == requests


def test_only_chosen_segments_and_context_kind(conn):
    with FakeLaunchDarkly(token=TOKEN) as fake:
        write_inputs(conn, user_segments=segments(DAY1, DAY1_USERS))
        sync(
            conn,
            destination(fake, segments=("power_user",), context_kind="account"),
            options=OPTIONS,
        )
        assert [key for (_, key) in fake.segments] == ["segflow-power_user"]
        assert fake.members("segflow-power_user", kind="account") == {"u0", "u3", "u6", "u9"}
        assert fake.members("segflow-power_user", kind="user") == set()


def test_segment_over_the_list_limit_is_refused_before_sending(conn):
    with FakeLaunchDarkly(token=TOKEN) as fake:
        write_inputs(conn, user_segments=segments(DAY1, DAY1_USERS))
        report = sync(conn, destination(fake, list_limit=10), options=OPTIONS)
        assert report.status == "refused" and fake.request_count == 0
        assert "trial (12 targets)" in report.message and "at most 10" in report.message
        chosen = sync(
            conn, destination(fake, list_limit=10, segments=("power_user",)), options=OPTIONS
        )
        assert chosen.status == "ok" and members(fake) == {
            "segflow-power_user": {"u0", "u3", "u6", "u9"}
        }


def test_bad_token_fails_fast_without_leaking_it(conn, caplog):
    with FakeLaunchDarkly(token=TOKEN) as fake:
        write_inputs(conn, user_segments=segments(DAY1, DAY1_USERS))
        with pytest.raises(DestinationAuthError, match="LAUNCHDARKLY_ACCESS_TOKEN") as err:
            sync(conn, destination(fake, access_token="wrong-token-123"), options=OPTIONS)
        assert "wrong-token-123" not in str(err.value) + caplog.text
        assert fake.request_count == 1


def test_429_with_reset_header_and_5xx_are_retried_nothing_lost(conn):
    faults = FaultConfig(rate_limit=3, rate_window_s=0.3, forced_statuses=[503, 500])
    with FakeLaunchDarkly(token=TOKEN, faults=faults) as fake:
        write_inputs(conn, user_segments=segments(DAY1, DAY1_USERS))
        report = sync(conn, destination(fake, max_items_per_batch=4), options=OPTIONS)
        assert report.status == "ok" and members(fake) == expected(DAY1_USERS)
        assert fake.status_counts["429"] >= 1 and fake.status_counts["503"] == 1
        assert report.request_retries >= 3
        # each (segment, batch) applied once: 3 batches x 2 segments (power_user in each)
        assert len(fake.patches) == 6


def test_failed_batches_are_retried_next_run(conn):
    with FakeLaunchDarkly(token=TOKEN) as fake:
        write_inputs(conn, user_segments=segments(DAY1, DAY1_USERS))
        assert sync(conn, destination(fake)).status == "ok"
        write_inputs(conn, user_segments=segments(DAY2, DAY2_USERS))
        fake.configure(fail_rate=1.0)
        broken = sync(
            conn, destination(fake, retry=RetryPolicy(max_retries=1, base_delay=0)), options=OPTIONS
        )
        assert broken.status == "partial" and broken.people_succeeded == 0
        assert set(broken.failures_by_reason) <= {"http_500", "http_502", "http_503"}
        assert members(fake) == expected(DAY1_USERS)  # nothing applied
        fake.configure(fail_rate=0.0)
        healed = sync(conn, destination(fake), options=OPTIONS)
        assert healed.status == "ok" and members(fake) == expected(DAY2_USERS)
        assert healed.people_sent == broken.people_sent


RUN_ONE_SYNC = """
import sys, duckdb
from orchestration.activation.destinations import LaunchDarklyDestination
from orchestration.activation.sync import sync
conn = duckdb.connect(sys.argv[1])
sync(conn, LaunchDarklyDestination(base_url=sys.argv[2], rate_limit=0, max_items_per_batch=5))
print("finished without being killed")
"""


def test_client_killed_mid_run_rerun_completes_without_resending_acked(tmp_path):
    db = tmp_path / "w.duckdb"
    users = {f"k{i:03d}": ["trial"] if i % 2 else ["paying", "trial"] for i in range(60)}
    with duckdb.connect(str(db)) as conn:
        write_inputs(conn, user_segments=segments(DAY1, users))
    with FakeLaunchDarkly(token=TOKEN) as fake:
        env = {**os.environ, "LAUNCHDARKLY_ACCESS_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_ONE_SYNC, str(db), fake.url],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        fake.on_kill = proc.kill
        # project check, two 404 + create + retry per segment, then people batches: the 15th
        # request falls inside the people (12 batches x 2 segments) whatever the senders' order
        fake.configure(kill_after_requests=15)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == -9, (proc.returncode, out, err[-2000:])
        with duckdb.connect(str(db)) as conn:
            journaled = {
                r[0] for r in conn.execute("select item_key from sync_journal where ok").fetchall()
            }
            assert 0 < len(journaled) < 60
            before = len(fake.patches)
            report = sync(conn, destination(fake), options=OPTIONS)
        resent = {v for p in fake.patches[before:] for i in p["instructions"] for v in i["values"]}
        assert report.status == "ok" and members(fake) == expected(users)
        assert resent == set(users) - journaled  # exactly the unacknowledged people
