"""Redis Streams adapter on a real redis-server: consumer groups, at-least-once delivery
(an unacknowledged entry comes back after a restart), lag, trimming only acknowledged."""

from __future__ import annotations

from orchestration.realtime.stream import RedisStream


def test_append_read_ack_and_redelivery(redis_url):
    stream = RedisStream(redis_url, "t:redelivery")
    stream.ensure_group("g")
    stream.ensure_group("g")  # idempotent
    ids = stream.append([b"a", b"b", b"c"])
    assert len(ids) == 3
    first = stream.read("g", "c1", count=2, block_ms=100)
    assert [p for _, p in first] == [b"a", b"b"]
    stream.ack("g", [first[0][0]])
    assert stream.lag("g").pending == 1 and stream.lag("g").undelivered == 1

    # "crash": a new client for the same consumer gets its unacknowledged entry first
    again = RedisStream(redis_url, "t:redelivery")
    redelivered = again.read("g", "c1", count=10, block_ms=100)
    assert [p for _, p in redelivered] == [b"b"]
    again.ack("g", [i for i, _ in redelivered])
    rest = again.read("g", "c1", count=10, block_ms=100)
    assert [p for _, p in rest] == [b"c"]
    again.ack("g", [i for i, _ in rest])
    assert again.read("g", "c1", count=10, block_ms=50) == []
    lag = again.lag("g")
    assert (lag.pending, lag.undelivered, lag.length) == (0, 0, 3)


def test_stale_entries_of_a_dead_consumer_are_claimed(redis_url):
    stream = RedisStream(redis_url, "t:claim", claim_idle_ms=0)
    stream.ensure_group("g")
    stream.append([b"x"])
    assert stream.read("g", "dead", count=10, block_ms=100)[0][1] == b"x"
    other = RedisStream(redis_url, "t:claim", claim_idle_ms=0)
    claimed = other.read("g", "alive", count=10, block_ms=100)
    assert [p for _, p in claimed] == [b"x"]


def test_trim_keeps_unacknowledged_entries(redis_url):
    stream = RedisStream(redis_url, "t:trim")
    stream.ensure_group("g")
    stream.append([b"1", b"2", b"3"])
    got = stream.read("g", "c", count=2, block_ms=100)
    stream.ack("g", [got[0][0]])
    assert stream.trim_acknowledged() == 1  # only "1" is acknowledged by every group
    assert stream.lag("g").length == 2
    pending = RedisStream(redis_url, "t:trim").read("g", "c", count=10, block_ms=100)
    assert [p for _, p in pending] == [b"2"]
