"""Intraday segment changes reach LaunchDarkly: the consumer's membership events become
adds/removes of the `segflow-<segment>` list-based segments, against the fake LaunchDarkly over
real HTTP (as the daily sync's tests); once per change, also after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.realtime_world import new_user_before_setup, realtime_segments_yaml

from contracts import tracking_plan
from orchestration.activation.destinations import LaunchDarklyDestination, OutgoingItem, RetryPolicy
from orchestration.activation.fake_launchdarkly import FakeLaunchDarkly
from orchestration.realtime.app import milestone_events
from orchestration.realtime.consumer import Consumer
from orchestration.realtime.events import encode, normalise
from orchestration.realtime.stream import RedisStream
from orchestration.segments import DEFAULT_FLOWS_PATH, load_config

TOKEN = "api-ld-realtime"
STALLED = """
  - name: stalled_in_session
    description: New user ten minutes into a session without creating a project.
    rule: session.minutes >= 10 and not reached_first_project and days_since_signup < 7
    priority: 95
    launchdarkly: true
    realtime: true
"""


def _launchdarkly(fake: FakeLaunchDarkly, config) -> LaunchDarklyDestination:
    return LaunchDarklyDestination(
        base_url=fake.url,
        access_token=TOKEN,
        segments=config.launchdarkly_segments,
        rate_limit=0,
        retry=RetryPolicy(max_retries=2, base_delay=0.001),
        timeout=(2.0, 2.0),
    )


def _consumer(world, stream, tmp_path, config, destination) -> Consumer:
    return Consumer(
        stream,
        tmp_path / "state.sqlite",
        world.snapshot,
        tmp_path / "landing",
        config,
        milestone_events(),
        tracking_plan.load().known_events,
        destinations=[destination],
        sweep_seconds=0,
    )


def test_intraday_changes_update_launchdarkly_segments(world, redis_url, tmp_path):
    segments = tmp_path / "segments.yml"
    segments.write_text(realtime_segments_yaml() + STALLED)
    config = load_config(segments, DEFAULT_FLOWS_PATH, world.triggers_file)
    assert {"new_users", "stalled_in_session"} <= set(config.launchdarkly_segments)
    user = new_user_before_setup(world)
    stream = RedisStream(redis_url, "t:launchdarkly")
    now = datetime.now(UTC)

    def send(consumer: Consumer, event: str, minutes_ago: float) -> None:
        moment = (now - timedelta(minutes=minutes_ago)).isoformat()
        message = {"type": "track", "userId": user, "event": event, "timestamp": moment}
        stream.append([encode(normalise(message, None, now))])
        while consumer.step(block_ms=50):
            pass

    with FakeLaunchDarkly(token=TOKEN) as fake:
        daily = _launchdarkly(fake, config)  # last night's sync: the user is a new user
        person = {"attributes": {"segment_new_users": True}}
        assert daily.send([OutgoingItem("person", user, user, person, b"")])[0].ok
        assert fake.members("segflow-new_users") == {user}

        consumer = _consumer(world, stream, tmp_path, config, _launchdarkly(fake, config))
        send(consumer, "Dashboard Viewed", 12)
        send(consumer, "Dashboard Viewed", 1)  # 11 minutes into the session, no project
        assert fake.members("segflow-stalled_in_session") == {user}
        assert fake.members("segflow-new_users") == {user}
        send(consumer, "Project Created", 0)  # setup done: leaves both
        assert fake.members("segflow-stalled_in_session") == set()
        assert fake.members("segflow-new_users") == set()
        patches = len(fake.patches)
        changes = [(p["segment"], p["instructions"][0]["kind"]) for p in fake.patches[1:]]
        assert changes == [  # one request per change, after last night's add
            ("segflow-stalled_in_session", "addIncludedTargets"),
            ("segflow-new_users", "removeIncludedTargets"),
            ("segflow-stalled_in_session", "removeIncludedTargets"),
        ]
        consumer.close()

        restarted = _consumer(world, stream, tmp_path, config, _launchdarkly(fake, config))
        send(restarted, "Project Created", 0)  # the same milestone again: nothing new
        restarted.close()
        assert len(fake.patches) == patches
        assert fake.members("segflow-new_users") == set()


@pytest.mark.parametrize(
    ("order", "member"),
    [(("segment_entered", "segment_exited"), False), (("segment_exited", "segment_entered"), True)],
)
def test_the_latest_change_in_a_batch_wins(world, tmp_path, order, member):
    """LaunchDarkly applies a request's adds and removes in its own order: of two changes
    of one person and segment in the same batch, only the later one is sent."""
    import json

    from orchestration.realtime import outputs, state

    db = state.connect(tmp_path / "state.sqlite")
    db.executemany(
        "insert into emitted values (?, 'u1', ?, 0, ?, 0, ?)",
        [(f"e{k}", name, json.dumps({"segment": "new_users"}), k) for k, name in enumerate(order)],
    )
    with FakeLaunchDarkly(token=TOKEN) as fake:
        outputs.send_events(db, _launchdarkly(fake, world.config))
        assert fake.members("segflow-new_users") == ({"u1"} if member else set())
    assert db.execute("select count(*) from delivered").fetchone()[0] == 2
