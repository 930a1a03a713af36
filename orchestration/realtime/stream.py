"""The event stream: an append-only log with consumer groups and at-least-once delivery.

`EventStream` is the adapter seam. Redis Streams (`RedisStream`, Debian `redis-server`) is the
one shipped and tested adapter. Another broker plugs in by implementing the same five methods:

- Kafka: `append` = produce with `acks=all` to a topic keyed by user id (waiting for the
  delivery reports); a group = a consumer group; `read` = poll; `ack` = commit the offsets
  of the acknowledged records; `pending` on restart = resume from the committed offset
  (Kafka redelivers everything after it, so the consumer's high-water mark skips repeats).
- Kinesis: `append` = PutRecords (retrying the failed records) with the user id as partition
  key; a group = a KCL application (lease table); `ack` = checkpoint the sequence number.
Both give at-least-once; the consumer (consumer.py) makes processing idempotent with a
per-stream high-water mark stored in the same transaction as its state, so a redelivery is
skipped. No Kafka/Kinesis adapter is shipped because no test here runs one.

Redis specifics (Redis 7.0): a consumer reads its own pending list first (entries delivered
but not acknowledged before a crash), then claims entries another consumer left pending for
longer than `claim_idle_ms` (XAUTOCLAIM), then new entries. Entries are never trimmed before
every group has acknowledged them (`trim_acknowledged`), because Redis 7.0 trimming would
drop unacknowledged entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Entry = tuple[str, bytes]  # (stream id, payload)
GROUP = "segflow-realtime"  # the consumer group (consumer.py; the daily job reads its lag)


@dataclass(frozen=True)
class GroupLag:
    """How far a consumer group is behind: entries never delivered, and delivered but not
    acknowledged (pending)."""

    undelivered: int
    pending: int
    length: int

    @property
    def total(self) -> int:
        return self.undelivered + self.pending


class EventStream(Protocol):
    """Adapter seam for the broker (see the module docstring for Kafka and Kinesis)."""

    def append(self, payloads: Sequence[bytes]) -> list[str]:
        """Durably append all payloads (all or none); returns their ids in order."""

    def ensure_group(self, group: str) -> None:
        """Create the consumer group (reading from the beginning) when absent."""

    def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """Entries for this consumer: its own unacknowledged ones first, then stale ones of
        other consumers, then new ones (waiting up to `block_ms` when there are none)."""

    def ack(self, group: str, ids: Sequence[str]) -> None:
        """Acknowledge processed entries; they are not delivered to this group again."""

    def lag(self, group: str) -> GroupLag:
        """Backlog of the group."""


PAYLOAD_FIELD = "e"  # the stream entry's one field: the message as JSON
APPEND_SCRIPT = f"""
local ids = {{}}
for i = 1, #ARGV do
    ids[i] = redis.call('XADD', KEYS[1], '*', '{PAYLOAD_FIELD}', ARGV[i])
end
return ids
"""


class RedisStream:
    """`EventStream` on a Redis stream key (redis-py)."""

    PAYLOAD = PAYLOAD_FIELD.encode()

    def __init__(self, url: str, key: str = "segflow:events", claim_idle_ms: int = 30_000):
        import redis  # imported here: keeps redis out of CLI start-up

        self.client = redis.Redis.from_url(url)
        self.key = key
        self.claim_idle_ms = claim_idle_ms
        self._own_pending_done: set[tuple[str, str]] = set()
        self._append = self.client.register_script(APPEND_SCRIPT)

    def append(self, payloads: Sequence[bytes]) -> list[str]:
        """One server-side script per call (atomic like MULTI/EXEC, nothing else runs in
        between): one command of N arguments costs the collector far less than N XADDs."""
        if not payloads:
            return []
        return [i.decode() for i in self._append(keys=[self.key], args=list(payloads))]

    def ensure_group(self, group: str) -> None:
        import redis

        try:
            self.client.xgroup_create(self.key, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[Entry]:
        if (group, consumer) not in self._own_pending_done:
            own = self._entries(
                self.client.xreadgroup(group, consumer, {self.key: "0"}, count=count)
            )
            if own:
                return own
            self._own_pending_done.add((group, consumer))
        _cursor, claimed, *_ = self.client.xautoclaim(
            self.key, group, consumer, self.claim_idle_ms, start_id="0-0", count=count
        )
        entries = [(i.decode(), f[self.PAYLOAD]) for i, f in claimed if f]
        if entries:
            return entries
        return self._entries(
            self.client.xreadgroup(
                group, consumer, {self.key: ">"}, count=count, block=block_ms or None
            )
        )

    def _entries(self, response) -> list[Entry]:
        if not response:
            return []
        _key, messages = response[0]
        return [(i.decode(), f[self.PAYLOAD]) for i, f in messages if f]

    def ack(self, group: str, ids: Sequence[str]) -> None:
        if ids:
            self.client.xack(self.key, group, *ids)

    def lag(self, group: str) -> GroupLag:
        length = self.client.xlen(self.key)
        for info in self.client.xinfo_groups(self.key):
            if info["name"].decode() == group:
                undelivered = info.get("lag")
                return GroupLag(
                    int(undelivered if undelivered is not None else 0),
                    int(info["pending"]),
                    int(length),
                )
        return GroupLag(int(length), 0, int(length))

    def trim_acknowledged(self) -> int:
        """Delete entries every group has acknowledged (XTRIM MINID below the oldest entry
        still pending or undelivered in any group); returns entries removed."""
        groups = self.client.xinfo_groups(self.key)
        if not groups:
            return 0
        floors = []
        for info in groups:
            pending = self.client.xpending(self.key, info["name"])
            if pending["pending"]:
                floors.append(pending["min"].decode())
            else:
                floors.append(_next_id(info["last-delivered-id"].decode()))
        return int(self.client.xtrim(self.key, minid=min(floors, key=_id_key), approximate=False))


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(stream_id: str) -> str:
    ms, seq = _id_key(stream_id)
    return f"{ms}-{seq + 1}"
