"""The stream consumer: applies each message once to the intraday state, re-evaluates the
realtime rules of the users it touched (and, for `session.*` rules, of users in a session:
`sweep`), emits entered/exited/trigger events through every configured destination, and drains every message (quarantined ones too) into the daily landing files
(`<landing>/events/dt=<received day>/rt-<first stream id>.jsonl`), so tonight's batch load
sees exactly what the stream saw.

Order per batch: read -> one SQLite transaction (state, profiles, drained lines, emitted
events, high-water mark) -> XACK -> write landing files and send events (under `run`, on the
output worker's thread: a slow destination never delays the next batch). A crash anywhere
redelivers the batch; entries at or below the high-water mark are skipped, landing files are
rewritten with identical content (name and lines fixed at commit) and events re-sent with the
same ids until each destination acknowledges them (outputs.py). Nothing is lost or doubled. One consumer
per stream: the high-water mark assumes in-order delivery to a single consumer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from orchestration.activation.destinations.base import Destination
from orchestration.realtime import consumer_rows, outputs, state
from orchestration.realtime.events import QUARANTINE
from orchestration.realtime.intraday import SESSION_GAP_S, Evaluator, session_values
from orchestration.realtime.profiles import SnapshotReader
from orchestration.realtime.stream import GROUP, EventStream, _id_key
from orchestration.segments.config import SegmentConfig

log = logging.getLogger(__name__)
TRIM_ENTRIES = 100_000  # acknowledged stream entries between trims (bounds broker memory)
DEFERRED_CHUNK = 200  # deferred users per transaction once caught up (bounds the hold)


class Consumer:
    def __init__(
        self,
        stream: EventStream,
        state_path: Path,
        snapshot_path: Path,
        landing_dir: Path,
        config: SegmentConfig,
        milestone_events: dict[str, str],
        known_events: frozenset[str],
        destinations: Sequence[Destination] = (),
        name: str = "consumer-1",
        batch_size: int = 1000,  # an upper bound: an idle stream gives what is there
        sweep_seconds: float = 30.0,  # session sweep period (0: off); see `sweep`
    ):
        self.stream, self.name, self.batch_size = stream, name, batch_size
        self.state_path = state_path
        self._worker: outputs.OutputWorker | None = None
        self.sweep_seconds = sweep_seconds
        self._swept = time.monotonic()
        self.db = state.connect(state_path)
        self.snapshot = SnapshotReader(snapshot_path)
        self.landing_dir = landing_dir
        self.evaluator = Evaluator(config, milestone_events)
        self.known_events = known_events
        names = [d.name for d in destinations]
        if len(set(names)) != len(names):
            raise ValueError(f"destinations {names}: each destination may appear once")
        self.destinations = tuple(destinations)
        self._untrimmed = 0  # entries acknowledged since the last trim
        self._unsent = False
        self._deferred = state.get_meta(self.db, "hwm") is not None  # checked when idle
        self.stream.ensure_group(GROUP)
        for destination in self.destinations:
            destination.open_run(f"realtime-{int(time.time())}", datetime.now(UTC).date())
        self.finish_pending()  # landing files / events a crash left behind

    def run(self, stop: threading.Event, block_ms: int = 500) -> None:
        """Step until `stop`; landing files and sends happen on the output worker."""
        self._worker = outputs.OutputWorker(
            self.state_path, self.landing_dir, self.destinations
        ).start()
        try:
            while not stop.is_set():
                self.step(block_ms)
        finally:
            self._worker.stop()
            self._worker = None
            self.close()

    def close(self) -> None:
        self.finish_pending()
        for destination in self.destinations:
            destination.close_run()

    def _outputs_due(self) -> None:
        """After a commit: wake the output worker, or write out inline (direct `step` calls)."""
        if self._worker is not None:
            self._worker.wake()
        else:
            self.finish_pending()

    def step(self, block_ms: int = 500) -> int:
        """Process one batch; returns the number of stream entries read, or when there were
        none the number of deferred users evaluated (0: idle)."""
        entries = self.stream.read(
            GROUP, self.name, self.batch_size, 0 if self._deferred else block_ms
        )
        if not entries:
            if self._unsent and self._worker is None:  # a destination failed: retry when idle
                self.finish_pending()
            self._maybe_sweep()
            return self.evaluate_deferred()
        hwm = _id_key(state.get_meta(self.db, "hwm", "0-0") or "0-0")
        fresh = [(i, p) for i, p in entries if _id_key(i) > hwm]
        if fresh:
            started = time.perf_counter()
            self.db.execute("begin immediate")
            try:
                self._apply(fresh)
                state.set_meta(self.db, "hwm", fresh[-1][0])
                state.set_meta(self.db, "last_batch_at", time.time())
                busy_ms = round((time.perf_counter() - started) * 1000)
                state.add_counter(self.db, "busy_ms", busy_ms)  # throughput = events / busy
                self.db.execute("commit")
            except BaseException:
                self.db.execute("rollback")
                raise
        self.stream.ack(GROUP, [i for i, _ in entries])
        self._outputs_due()
        self._untrimmed += len(entries)
        trim = getattr(self.stream, "trim_acknowledged", None)
        if trim is not None and self._untrimmed >= TRIM_ENTRIES:
            self._untrimmed = 0
            trim()  # drained to the landing files and acknowledged: the broker can let go
        self._maybe_sweep()
        if len(entries) < self.batch_size:  # caught up with the stream
            self.evaluate_deferred()
        return len(entries)

    def evaluate_deferred(self, limit: int = DEFERRED_CHUNK) -> int:
        """Evaluate up to `limit` deferred users (see `_needing_evaluation`) in one
        transaction; returns how many were taken off the queue."""
        if not self._deferred:
            return 0
        rows = self.db.execute(
            "select user_id, day from deferred order by rowid limit ?", (limit,)
        ).fetchall()
        self._deferred = bool(rows)
        if not rows:
            return 0
        hidden = self.snapshot.suppressed([user for user, _ in rows])  # a privacy request since
        snap_day = self.snapshot.snapshot_date()
        # a day the daily run has covered since needs no intraday answer: its result wins
        done = {u for u, day in rows if snap_day and date.fromisoformat(day) <= snap_day}
        self.db.execute("begin immediate")
        try:
            dropped = [(u,) for u in hidden | done]
            self.db.executemany("delete from deferred where user_id = ?", dropped)
            users = {u: date.fromisoformat(day) for u, day in rows if u not in hidden | done}
            if users:
                self._reevaluate(users)
            self.db.execute("commit")
        except BaseException:
            self.db.execute("rollback")
            raise
        self._outputs_due()
        return len(rows)

    def _maybe_sweep(self) -> None:
        if self.sweep_seconds and time.monotonic() - self._swept >= self.sweep_seconds:
            self._swept = time.monotonic()
            self.sweep()

    def sweep(self, now: float | None = None) -> int:
        """Re-evaluate, without an event, the users whose session is open or ended since the
        last sweep, when a realtime rule reads `session.*`: time in session grows while the
        user is idle (a user stalling mid-setup moves to a help flow) and a session that
        ends (30 minutes without events) drops its session-based memberships. Other inputs
        only change with events or the daily run, so nobody else is re-evaluated. Returns
        the number of users re-evaluated."""
        if not self.evaluator.reads_session:
            return 0
        now = time.time() if now is None else now
        since = float(state.get_meta(self.db, "last_sweep", "0") or 0)
        users = [
            u
            for (u,) in self.db.execute(
                "select user_id from session where last_at >= ?", (since - SESSION_GAP_S,)
            )
        ]
        users = sorted(set(users) - self.snapshot.suppressed(users))
        today = datetime.fromtimestamp(now, UTC).date()
        self.db.execute("begin immediate")
        try:
            if users:
                self._reevaluate(dict.fromkeys(users, today), as_of=now)
            state.set_meta(self.db, "last_sweep", now)
            state.add_counter(self.db, "sweeps", 1)
            self.db.execute("commit")
        except BaseException:
            self.db.execute("rollback")
            raise
        self._outputs_due()
        return len(users)

    def _apply(self, entries: list[tuple[str, bytes]]) -> None:
        batch = entries[0][0]
        drained: dict[str, list[str]] = {}  # landing day -> lines, in stream order
        per_user, quarantined = {}, 0
        for _stream_id, payload in entries:
            message = json.loads(payload)
            bad = message.pop(QUARANTINE, None)
            line = json.dumps(message, separators=(",", ":")) if bad else payload.decode()
            drained.setdefault(str(message.get("receivedAt", ""))[:10], []).append(line)
            if bad:
                quarantined += 1
            elif message.get("userId"):  # anonymous activity is stitched by the daily build
                per_user.setdefault(str(message["userId"]), []).append(message)
        self.db.executemany(
            "insert into pending_file values (?, ?, ?)",
            [(batch, dt, "\n".join(lines) + "\n") for dt, lines in drained.items()],
        )
        for user in self.snapshot.suppressed(list(per_user)):  # privacy: never applied or sent
            del per_user[user]
        sessions = state.by_user(
            self.db, "select user_id, started_at, last_at, events from session", list(per_user)
        )
        touched, day_updates, session_rows = {}, {}, []
        for user, messages in per_user.items():
            latest, days, session = consumer_rows.record(
                messages, sessions.get(user), self.evaluator, self.known_events
            )
            touched[user] = latest
            day_updates.update({(user, day): update for day, update in days.items()})
            session_rows.append((user, *session))
        grown = self._changing_inputs(self._write_days(day_updates))
        self.db.executemany("insert or replace into session values (?, ?, ?, ?)", session_rows)
        state.add_counter(self.db, "events_applied", len(entries) - quarantined)
        state.add_counter(self.db, "events_quarantined", quarantined)
        touched = self._needing_evaluation(touched, grown)
        if touched:
            self._reevaluate(touched)

    def _changing_inputs(self, new: dict[str, set[str]]) -> set[str]:
        """Users whose new milestones change an input of the evaluation (a `reached_<m>` some
        rule, trigger or block reads, or a signup) that the snapshot does not already have
        (reaching it again changes nothing)."""
        inputs = self.evaluator.input_milestones
        relevant = {u: ms & inputs for u, ms in new.items() if ms & inputs}
        known = self.snapshot.reached(list(relevant), sorted(set().union(*relevant.values())))
        return {u for u, ms in relevant.items() if ms - known.get(u, set())}

    def _needing_evaluation(self, touched: dict[str, date], grown: set[str]) -> dict[str, date]:
        """Users whose realtime inputs changed now: a new milestone or a session value a rule
        reads. Users with no intraday answer yet for this day on the current snapshot (only
        the day moved on: `days_since_signup`) are deferred until the consumer has caught
        up, so a burst of first events of the day does not delay the changes events cause;
        until then they are served the snapshot's answer, as before their first event. For
        the others a re-evaluation would give the same answer, so it is skipped."""
        if self.evaluator.reads_session:
            return touched
        answered = state.by_user(
            self.db, "select user_id, day, updated_at from profile", list(touched)
        )
        snapshot_at = self.snapshot.version()
        stale = {
            user: day
            for user, day in touched.items()
            if user not in grown
            and (
                user not in answered
                or answered[user][0] != day.isoformat()
                or answered[user][1] < snapshot_at
            )
        }
        if stale:
            self.db.executemany(
                "insert or replace into deferred values (?, ?)",
                [(user, day.isoformat()) for user, day in stale.items()],
            )
            self._deferred = True
        return {user: day for user, day in touched.items() if user in grown}

    def _write_days(self, updates: dict[tuple[str, str], tuple[dict, set]]) -> dict[str, set[str]]:
        """Add a batch's counts and milestones to the users' days (one read, one write);
        returns {user: milestones new for that day}."""
        users = sorted({user for user, _ in updates})
        existing = state.by_user(
            self.db, "select user_id, day, counts, milestones from user_day", users, many=True
        )
        stored = {(user, r[0]): r[1:] for user, days in existing.items() for r in days}
        rows, grown = [], {}
        for (user, day), (counts, milestones) in updates.items():
            old = stored.get((user, day))
            before = set(json.loads(old[1])) if old else set()
            if milestones - before:
                grown.setdefault(user, set()).update(milestones - before)
            total = json.loads(old[0]) if old else {}
            for event, n in counts.items():
                total[event] = total.get(event, 0) + n
            reached = json.dumps(sorted(before | milestones))
            rows.append((user, day, json.dumps(total, sort_keys=True), reached))
        self.db.executemany("insert or replace into user_day values (?, ?, ?, ?)", rows)
        return grown

    def _reevaluate(self, touched: dict[str, date], as_of: float | None = None) -> None:
        """Re-evaluate `touched` users ({user: day}); session values as of their latest
        event, or as of `as_of` (a sweep)."""
        snap_day = self.snapshot.snapshot_date()
        after = snap_day.isoformat() if snap_day else "0000-00-00"
        users = sorted(touched)
        found = self.snapshot.baselines(users)
        bases = [found[u] for u in users]
        days = [touched[u] if snap_day is None else max(touched[u], snap_day) for u in users]
        reached = state.by_user(
            self.db,
            "select user_id, milestones from user_day",
            users,
            "and day > ?",
            (after,),
            many=True,
        )
        previous = state.by_user(
            self.db,  # an earlier day's answer is served until the daily run
            "select user_id, day, segments, fired from profile",
            users,
            "and day > ?",
            (after,),
        )
        sessions = state.by_user(
            self.db, "select user_id, started_at, last_at, events from session", users
        )
        rows, starts = [], []
        for user, base, day in zip(users, bases, days, strict=True):
            milestones = {m for (text,) in reached.get(user, []) for m in json.loads(text)}
            since = (day - snap_day).days if snap_day else 0
            values = session_values(sessions.get(user), as_of)
            rows.append(self.evaluator.overlay(base, milestones, since, values))
            starts.append(self.evaluator.overlay(base, set(), since))
        verdicts = self.evaluator.verdicts(rows + starts)
        state.add_counter(self.db, "rule_evaluations", len(rows) * len(verdicts.columns))
        records = verdicts.to_dict("records") or [{}] * (len(rows) * 2)
        now, before = records[: len(rows)], records[len(rows) :]
        realtime_names = {s.name for s in self.evaluator.realtime}
        raws = []
        for k, base in enumerate(bases):
            raw = set(base.raw_segments) - realtime_names
            raw |= {s.name for i, s in enumerate(self.evaluator.realtime) if now[k][f"rt_{i}"]}
            raws.append(raw)
        today = max(days)
        profiles = self.evaluator.resolve(users, today, raws, rows)
        profile_rows, emitted_rows = [], []
        for k, (user, base, profile) in enumerate(zip(users, bases, profiles, strict=True)):
            row, events = consumer_rows.store(
                self.evaluator, user, days[k], base, profile, now[k], before[k], previous.get(user)
            )
            profile_rows.append(row)
            emitted_rows += events
        self.db.executemany(
            "insert or ignore into emitted values (?, ?, ?, ?, ?, 0, ?)", emitted_rows
        )
        self.db.executemany(
            "insert or replace into profile values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", profile_rows
        )
        self.db.executemany("delete from deferred where user_id = ?", [(u,) for u in users])

    def finish_pending(self) -> None:
        """Write landing files of committed batches and send unsent events (idempotent)."""
        self._unsent = outputs.finish(self.db, self.landing_dir, self.destinations)
