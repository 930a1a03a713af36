"""The consumer's per-user row shapes (split from consumer.py): a batch's messages of one user
as day counts, milestones and session, and one re-evaluated user's profile row and emitted
events."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

from orchestration.realtime import outputs
from orchestration.realtime.events import parse_time
from orchestration.realtime.intraday import SESSION_GAP_S, Baseline, Evaluator


def record(
    messages: list[dict], session: tuple | None, evaluator: Evaluator, known_events: frozenset[str]
):
    """One user's messages of this batch -> (latest event day, {day: (counts,
    milestones)}, session (started, last, events))."""
    days: dict[str, tuple[dict[str, int], set[str]]] = {}
    started, last, events = session if session else (None, None, 0)
    moments = [parse_time(m.get("timestamp")) or datetime.now(UTC) for m in messages]
    for moment, message in sorted(zip(moments, messages, strict=True), key=lambda x: x[0]):
        event = message.get("event") if message.get("type") == "track" else None
        counts, milestones = days.setdefault(moment.date().isoformat(), ({}, set()))
        if event in known_events:
            counts[event] = counts.get(event, 0) + 1
        if event in evaluator.milestone_of:
            milestones.add(evaluator.milestone_of[event])
        ts = moment.timestamp()
        if last is None or ts - last > SESSION_GAP_S:  # 30 min without events: new session
            started, last, events = ts, ts, 1
        else:
            started, last, events = min(started, ts), max(last, ts), events + 1
    return max(moments).date(), days, (started, last, events)


def store(
    evaluator: Evaluator, user: str, day: date, base: Baseline, profile, now, before, previous
):
    """(profile row, emitted event rows) of one re-evaluated user."""
    # what destinations last saw: the latest intraday answer newer than the snapshot,
    # even from before midnight (a session membership ending after midnight exits; one
    # spanning it is not entered again), else the snapshot's; triggers fire once a day
    old_segments = tuple(json.loads(previous[1])) if previous else base.segments
    fired_before = json.loads(previous[2]) if previous and previous[0] == day.isoformat() else []
    fired = [
        t.name
        for i, t in enumerate(evaluator.triggers)
        if t.rule is not None
        and bool(now[f"tr_{i}"])
        and not bool(before[f"tr_{i}"])
        and t.name not in fired_before
    ]
    day_ts = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    events = evaluator.events(user, day_ts, old_segments, profile.segments, fired)
    fired_all = fired_before + [e.name for e in events if e.name not in outputs.MEMBERSHIP]
    emitted = [
        (e.event_id, e.person_id, e.name, e.timestamp, json.dumps(e.data), time.time())
        for e in events
    ]
    profile_row = (
        user,
        day.isoformat(),
        json.dumps(list(profile.segments)),
        profile.primary_segment,
        profile.onboarding_flow,
        profile.experiment,
        profile.experiment_variant,
        profile.next_block,
        json.dumps(sorted(set(fired_all))),
        time.time(),
    )
    return profile_row, emitted
