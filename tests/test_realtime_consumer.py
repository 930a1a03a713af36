"""The consumer on a real redis-server with the real collector: a user completing setup
mid-day leaves the new-user flow within seconds and the trigger fires once; the stream is
drained into the landing files, which the batch loader reads with the same quarantine."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
import requests
from support.realtime import WRITE_KEY, running_collector
from support.realtime_world import SNAPSHOT_DAY, TODAY, moment_today, new_user_before_setup

from contracts import tracking_plan
from orchestration.activation.destinations import OutboxDestination
from orchestration.realtime.app import milestone_events
from orchestration.realtime.consumer import Consumer
from orchestration.realtime.events import encode, normalise
from orchestration.realtime.profiles import ProfileReader
from orchestration.realtime.stream import RedisStream
from orchestration.sources.load import load_partitions

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}


def _consumer(world, redis_url, key, tmp_path):
    return Consumer(
        RedisStream(redis_url, key),
        tmp_path / "state.sqlite",
        world.snapshot,
        tmp_path / "landing",
        world.config,
        milestone_events(),
        tracking_plan.load().known_events,
        destinations=[OutboxDestination(tmp_path / "outbox")],
    )


def _outbox_events(directory) -> list[dict]:
    items = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            items += json.loads(line)["batch"]
    return items


def _track(http, url, user, event):
    body = {"userId": user, "event": event, "timestamp": moment_today().isoformat()}
    response = http.post(f"{url}/v1/track", json=body, headers=AUTH)
    assert response.status_code == 200


def test_setup_mid_day_leaves_new_user_flow_within_seconds(world, redis_url, tmp_path):
    user = new_user_before_setup(world)
    consumer = _consumer(world, redis_url, "t:midday", tmp_path)
    reader = ProfileReader(world.snapshot, tmp_path / "state.sqlite", world.config, {})
    assert reader.profile(user)["onboarding_flow"] == "new_user_onboarding"
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop, 100), daemon=True)
    thread.start()
    try:
        with running_collector(redis_url, "t:midday") as collector, requests.Session() as http:
            _track(http, collector.url, user, "Dashboard Viewed")
            sent = time.monotonic()
            _track(http, collector.url, user, "Project Created")
            while time.monotonic() - sent < 10:
                profile = reader.profile(user)
                if profile["onboarding_flow"] != "new_user_onboarding":
                    break
                time.sleep(0.02)
            elapsed = time.monotonic() - sent
            assert profile["onboarding_flow"] != "new_user_onboarding", profile
            assert "new_users" not in [s["name"] for s in profile["segments"]]
            assert profile["source"] == "intraday" and profile["as_of"] == TODAY.isoformat()
            assert elapsed < 3, f"took {elapsed:.2f} s"
            # the same milestone again, and more activity: the trigger does not fire again
            _track(http, collector.url, user, "Project Created")
            _track(http, collector.url, user, "Report Created")
            deadline = time.monotonic() + 10
            while RedisStream(redis_url, "t:midday").lag("segflow-realtime").total and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    events = [e for e in _outbox_events(tmp_path / "outbox") if e["identifiers"]["id"] == user]
    names = [e["name"] for e in events]
    assert names.count("created_first_project") == 1, names
    assert names.count("segment_exited") == 1 and events[names.index("segment_exited")][
        "attributes"
    ] == {"segment": "new_users"}
    day_ts = int(datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC).timestamp())
    assert {e["timestamp"] for e in events} == {day_ts}
    assert len({e["id"] for e in events}) == len(events)


def test_drained_landing_files_load_with_the_same_quarantine(world, redis_url, tmp_path):
    consumer = _consumer(world, redis_url, "t:drain", tmp_path)
    with running_collector(redis_url, "t:drain") as collector, requests.Session() as http:
        now = datetime.now(UTC).isoformat()
        old = (datetime.now(UTC) - timedelta(days=9)).replace(microsecond=0).isoformat()
        batch = [
            {"type": "track", "userId": "u1", "event": "Report Created", "timestamp": now},
            {"type": "track", "userId": "u1", "event": "Not In Plan", "timestamp": now},
            {"type": "identify", "userId": "u2", "traits": {"plan": "pro"}, "timestamp": now},
            {"type": "track", "event": "Report Created", "timestamp": now},
            {"type": "screen", "userId": "u3", "name": "Home", "timestamp": now},
            {"type": "page", "anonymousId": "a1", "name": "Docs", "timestamp": now},
            {"type": "track", "userId": "u4", "event": "Report Created", "timestamp": "soon"},
            {"type": "alias", "userId": "u5", "previousId": "a1", "timestamp": now},
            {"type": "track", "userId": "u6", "event": "Report Created", "timestamp": old},
        ]
        response = http.post(f"{collector.url}/v1/batch", json={"batch": batch}, headers=AUTH)
        assert response.status_code == 200
    while consumer.step(block_ms=200):
        pass
    stream_reasons = {}
    for entries in [RedisStream(redis_url, "t:drain").client.xrange("t:drain")]:
        for _, fields in entries:
            message = json.loads(fields[b"e"])
            if "_quarantine" in message:
                q = message["_quarantine"]
                stream_reasons[message["messageId"]] = (q["reason_code"], q["reason_detail"])
    files = list((tmp_path / "landing" / "events").glob("dt=*/rt-*.jsonl"))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == len(batch) and all("_quarantine" not in m for m in lines)
    days = sorted(
        {datetime.fromisoformat(m["receivedAt"].replace("Z", "+00:00")).date() for m in lines}
    )
    with duckdb.connect() as conn:
        report = load_partitions(conn, "events", days, tmp_path / "landing", "files", 3)
        loaded = conn.execute("select count(*) from raw.events").fetchone()[0]
        quarantine = conn.execute(
            "select payload, reason_code, reason_detail from raw.quarantine"
        ).fetchall()
    batch_reasons = {json.loads(p)["messageId"]: (code, detail) for p, code, detail in quarantine}
    assert report.rows_loaded == loaded == 4  # screen is read as page by both paths
    assert batch_reasons == stream_reasons and len(stream_reasons) == 5


STALLED = """
  - name: stalled_in_session
    description: New user ten minutes into a session without creating a project.
    rule: session.minutes >= 10 and not reached_first_project and days_since_signup < 7
    priority: 95
    realtime: true
"""


def _session_world(world, redis_url, key, tmp_path, **options):
    """A consumer on the shipped segments plus the session rule STALLED (flow churn_rescue),
    a profile reader, the stream and a new user before setup."""
    from support.realtime_world import realtime_segments_yaml

    from orchestration.segments import DEFAULT_FLOWS_PATH, load_config

    segments = tmp_path / "segments.yml"
    segments.write_text(realtime_segments_yaml() + STALLED)
    flows = tmp_path / "flows.yml"
    flows.write_text(
        DEFAULT_FLOWS_PATH.read_text().replace(
            "segment_flows:\n", "segment_flows:\n  stalled_in_session: churn_rescue\n"
        )
    )
    config = load_config(segments, flows, world.triggers_file)
    stream = RedisStream(redis_url, key)
    consumer = Consumer(
        stream,
        tmp_path / "state.sqlite",
        world.snapshot,
        tmp_path / "landing",
        config,
        milestone_events(),
        tracking_plan.load().known_events,
        **options,
    )
    reader = ProfileReader(world.snapshot, tmp_path / "state.sqlite", config, {})
    return consumer, reader, stream, new_user_before_setup(world)


def test_session_rule_moves_a_stalling_user_to_a_help_flow(world, redis_url, tmp_path):
    consumer, reader, stream, user = _session_world(world, redis_url, "t:session", tmp_path)
    now = datetime.now(UTC)

    def send(event: str, minutes_ago: float) -> dict:
        moment = (now - timedelta(minutes=minutes_ago)).isoformat()
        message = normalise(
            {"type": "track", "userId": user, "event": event, "timestamp": moment}, None, now
        )
        stream.append([encode(message)])
        while consumer.step(block_ms=50):
            pass
        return reader.profile(user)

    assert send("Dashboard Viewed", 12)["onboarding_flow"] == "new_user_onboarding"
    assert send("Dashboard Viewed", 6)["onboarding_flow"] == "new_user_onboarding"
    stalled = send("Dashboard Viewed", 1)  # 11 minutes into the session, no project yet
    assert stalled["primary_segment"] == "stalled_in_session"
    assert stalled["onboarding_flow"] == "churn_rescue"
    done = send("Project Created", 0)
    assert "stalled_in_session" not in [s["name"] for s in done["segments"]]
    assert done["onboarding_flow"] != "churn_rescue"
    # an hour later a new session starts: session values begin again
    later = normalise(
        {"type": "track", "userId": user, "event": "Dashboard Viewed"},
        None,
        now + timedelta(minutes=45),
    )
    stream.append([encode(later)])
    while consumer.step(block_ms=50):
        pass
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        assert db.execute("select events from session where user_id = ?", (user,)).fetchone() == (
            1,
        )


def test_the_sweep_moves_an_idle_stalling_user_and_ends_the_session(world, redis_url, tmp_path):
    """No event after the first: only the sweep can see the user stall, and the session end."""
    outbox = tmp_path / "outbox"
    consumer, reader, stream, user = _session_world(
        world,
        redis_url,
        "t:sweep",
        tmp_path,
        destinations=[OutboxDestination(outbox)],
        sweep_seconds=0,  # swept by hand below, at chosen times
    )
    # the session and its sweeps (50 minutes) stay inside one UTC day: a run just before
    # midnight starts the session earlier in the day
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    started = min(time.time() - 60, midnight + 86400 - 55 * 60)
    moment = datetime.fromtimestamp(started, UTC).isoformat()
    stream.append(
        [
            encode(
                normalise(
                    {"type": "track", "userId": user, "event": "Dashboard Viewed",
                     "timestamp": moment},
                    None,
                    datetime.now(UTC),
                )
            )
        ]
    )  # fmt: skip
    while consumer.step(block_ms=50):
        pass
    assert reader.profile(user)["onboarding_flow"] == "new_user_onboarding"
    assert consumer.sweep(now=started + 5 * 60) == 1  # idle 5 minutes: not stalled yet
    assert reader.profile(user)["onboarding_flow"] == "new_user_onboarding"
    consumer.sweep(now=started + 11 * 60)  # idle 11 minutes into the session, no project
    stalled = reader.profile(user)
    assert stalled["primary_segment"] == "stalled_in_session"
    assert stalled["onboarding_flow"] == "churn_rescue"
    assert consumer.sweep(now=started + 45 * 60) == 1  # 30 minutes without events: ended
    over = reader.profile(user)
    assert "stalled_in_session" not in [s["name"] for s in over["segments"]]
    assert over["onboarding_flow"] == "new_user_onboarding"
    assert consumer.sweep(now=started + 50 * 60) == 0  # an ended session is not swept again
    names = [e["name"] for e in _outbox_events(outbox) if e["identifiers"]["id"] == user]
    assert names.count("segment_entered") == 1 and names.count("segment_exited") == 1, names


def test_the_sweep_is_off_without_session_rules(world, redis_url, tmp_path):
    consumer = _consumer(world, redis_url, "t:nosweep", tmp_path)
    assert not consumer.evaluator.reads_session and consumer.sweep() == 0


def test_session_values_need_a_realtime_rule(world, tmp_path):
    from support.realtime_world import realtime_segments_yaml

    from orchestration.segments import DEFAULT_FLOWS_PATH, SegmentConfigError, load_config

    segments = tmp_path / "segments.yml"
    segments.write_text(realtime_segments_yaml() + STALLED.replace("    realtime: true\n", ""))
    with pytest.raises(SegmentConfigError, match="only intraday; mark it `realtime: true`"):
        load_config(segments, DEFAULT_FLOWS_PATH, world.triggers_file)
    segments.write_text(
        realtime_segments_yaml() + STALLED.replace("session.minutes", "session.mins")
    )
    with pytest.raises(SegmentConfigError, match="unknown session value `session.mins`"):
        load_config(segments, DEFAULT_FLOWS_PATH, world.triggers_file)


def test_suppressed_people_are_neither_served_nor_sent(world, redis_url, tmp_path):
    from orchestration.activation import privacy
    from orchestration.realtime.snapshot import build_snapshot

    user = new_user_before_setup(world)
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(world.warehouse.read_bytes())
    snapshot = tmp_path / "snapshot.sqlite"
    with duckdb.connect(str(warehouse)) as conn:
        privacy.ensure_tables(conn)
        conn.execute(
            "insert into main.privacy_suppressions values (?, 'delete', 'req-1', now())", [user]
        )
        facts = build_snapshot(conn, world.config, snapshot)
    assert facts["suppressed"] == 1
    stream = RedisStream(redis_url, "t:privacy")
    consumer = Consumer(
        stream,
        tmp_path / "state.sqlite",
        snapshot,
        tmp_path / "landing",
        world.config,
        milestone_events(),
        tracking_plan.load().known_events,
        destinations=[OutboxDestination(tmp_path / "outbox")],
    )
    now = datetime.now(UTC)
    stream.append([encode(normalise({"userId": user, "event": "Project Created"}, "track", now))])
    while consumer.step(block_ms=50):
        pass
    reader = ProfileReader(snapshot, tmp_path / "state.sqlite", world.config, {})
    assert reader.profile(user) is None  # serve answers with the unknown-user default
    assert _outbox_events(tmp_path / "outbox") == []
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        assert db.execute("select count(*) from user_day").fetchone() == (0,)


def test_changes_an_event_causes_come_before_new_day_re_evaluations(world, redis_url, tmp_path):
    """In a full batch (the consumer is behind), the user whose event reached a milestone is
    evaluated at once; users whose only change is the new day (days since signup) are
    deferred, served the snapshot's answer meanwhile, and evaluated once it caught up."""
    setup_user = new_user_before_setup(world)
    others = [u for u in sorted(world.features["user_id"].unique()) if u != setup_user][:3]
    stream = RedisStream(redis_url, "t:deferred")
    now = moment_today()
    messages = [{"userId": u, "event": "Dashboard Viewed"} for u in others]
    messages.append({"userId": setup_user, "event": "Project Created"})
    messages.append({"userId": "signed-up-today", "event": "Account Created"})
    stream.append([encode(normalise(m, "track", now)) for m in messages])
    consumer = Consumer(
        stream,
        tmp_path / "state.sqlite",
        world.snapshot,
        tmp_path / "landing",
        world.config,
        milestone_events(),
        tracking_plan.load().known_events,
        batch_size=len(messages),
    )
    reader = ProfileReader(world.snapshot, tmp_path / "state.sqlite", world.config, {})
    db = sqlite3.connect(tmp_path / "state.sqlite")

    assert consumer.step(block_ms=50) == len(messages)  # a full batch: not caught up yet
    assert reader.profile(setup_user)["onboarding_flow"] != "new_user_onboarding"
    answered = {u for (u,) in db.execute("select user_id from profile")}
    assert answered == {setup_user, "signed-up-today"}  # a milestone, a signup: at once
    assert {u for (u,) in db.execute("select user_id from deferred")} == set(others)
    assert {reader.profile(u)["source"] for u in others} == {"daily"}

    assert consumer.step(block_ms=50) == len(others)  # idle: the deferred users
    rows = dict(db.execute("select user_id, day from profile").fetchall())
    assert set(rows) == {setup_user, "signed-up-today", *others}
    assert set(rows.values()) == {TODAY.isoformat()}
    assert db.execute("select count(*) from deferred").fetchone()[0] == 0
    assert {reader.profile(u)["source"] for u in others} == {"intraday"}
    assert consumer.step(block_ms=50) == 0
    consumer.close()


def _at(stream, consumer, user: str, event: str, moment: datetime) -> None:
    """`event` of `user` stamped `moment` (the clock the consumer reads), applied."""
    message = {"type": "track", "userId": user, "event": event, "timestamp": moment.isoformat()}
    stream.append([encode(normalise(message, None, moment))])
    while consumer.step(block_ms=50):
        pass


def _membership_events(outbox, user: str) -> list[tuple[str, str, int]]:
    return [
        (e["name"], e["attributes"].get("segment"), e["timestamp"])
        for e in _outbox_events(outbox)
        if e["identifiers"]["id"] == user and e["name"] in ("segment_entered", "segment_exited")
    ]


def test_a_session_membership_ending_after_utc_midnight_is_exited(world, redis_url, tmp_path):
    """The session starts at 23:45 UTC and the user stalls (entered before midnight); the
    sweep at 00:20 sees the session over: the exit is emitted on the new day, once."""
    outbox = tmp_path / "outbox"
    consumer, reader, stream, user = _session_world(
        world, redis_url, "t:midnight-sweep", tmp_path,
        destinations=[OutboxDestination(outbox)], sweep_seconds=0,
    )  # fmt: skip
    midnight = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC) + timedelta(days=1)
    _at(stream, consumer, user, "Dashboard Viewed", midnight - timedelta(minutes=15))
    consumer.sweep(now=(midnight - timedelta(minutes=3)).timestamp())  # 12 minutes in
    assert reader.profile(user)["primary_segment"] == "stalled_in_session"
    assert consumer.sweep(now=(midnight + timedelta(minutes=20)).timestamp()) == 1  # ended
    over = reader.profile(user)
    assert "stalled_in_session" not in [s["name"] for s in over["segments"]]
    assert over["onboarding_flow"] == "new_user_onboarding"
    assert _membership_events(outbox, user) == [
        ("segment_entered", "stalled_in_session", int((midnight - timedelta(days=1)).timestamp())),
        ("segment_exited", "stalled_in_session", int(midnight.timestamp())),
    ]


def test_a_session_across_utc_midnight_keeps_its_membership(world, redis_url, tmp_path):
    """Events on both sides of midnight in one session: still stalled after midnight is not
    a second entry; the first project at 00:06 exits the segment on the new day."""
    outbox = tmp_path / "outbox"
    consumer, reader, stream, user = _session_world(
        world, redis_url, "t:midnight-events", tmp_path,
        destinations=[OutboxDestination(outbox)], sweep_seconds=0,
    )  # fmt: skip
    midnight = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC) + timedelta(days=1)
    _at(stream, consumer, user, "Dashboard Viewed", midnight - timedelta(minutes=15))
    _at(stream, consumer, user, "Dashboard Viewed", midnight - timedelta(minutes=3))
    assert reader.profile(user)["primary_segment"] == "stalled_in_session"
    _at(stream, consumer, user, "Dashboard Viewed", midnight + timedelta(minutes=5))
    assert reader.profile(user)["primary_segment"] == "stalled_in_session"
    _at(stream, consumer, user, "Project Created", midnight + timedelta(minutes=6))
    assert "stalled_in_session" not in [s["name"] for s in reader.profile(user)["segments"]]
    stalled = [e for e in _membership_events(outbox, user) if e[1] == "stalled_in_session"]
    assert stalled == [
        ("segment_entered", "stalled_in_session", int((midnight - timedelta(days=1)).timestamp())),
        ("segment_exited", "stalled_in_session", int(midnight.timestamp())),
    ]


def test_deferred_days_the_daily_run_covered_are_dropped(world, redis_url, tmp_path):
    """A user queued for a day the snapshot has reached since gets no intraday answer (the
    daily result wins); one queued for today does."""
    consumer = _consumer(world, redis_url, "t:deferred-covered", tmp_path)
    users = sorted(world.features["user_id"].unique())[:2]
    consumer.db.executemany(
        "insert into deferred values (?, ?)",
        [(users[0], SNAPSHOT_DAY.isoformat()), (users[1], TODAY.isoformat())],
    )
    consumer._deferred = True
    assert consumer.evaluate_deferred() == 2
    rows = consumer.db.execute("select user_id, day from profile").fetchall()
    assert rows == [(users[1], TODAY.isoformat())]
    assert consumer.db.execute("select count(*) from deferred").fetchone()[0] == 0
    consumer.close()
