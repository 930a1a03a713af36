"""Intraday re-segmentation: yesterday's snapshot features overlaid with today's per-user
state, the `realtime: true` segment rules and triggers re-evaluated with the rule compiler's
own SQL (segments.config / rules.py, run on an in-memory DuckDB), then exclusions, primary
segment, flow, experiment arm and next block resolved by the daily step's own code
(segments.assign._resolve), so the two paths cannot disagree on the same inputs.

Overlay (what today's events can change before tonight's build): `reached_<milestone>` once a
milestone event arrives; `days_since_signup` advanced by the days since the snapshot; a user
absent from the snapshot who creates an account today is a signup of today (0 days).
`session.*` values (segments/session.py) come from the user's current session. Every other
feature and every score keeps yesterday's value until the daily build.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from orchestration.activation.ids import event_ulid
from orchestration.segments.assign import _resolve
from orchestration.segments.config import SegmentConfig
from orchestration.segments.session import SESSION_COLUMNS


def _session_gap_s() -> int:
    """dbt's `vars.session_timeout_minutes` (dbt_project.yml, where the daily sessions read
    it), in seconds: both paths split sessions at the same gap."""
    import yaml

    from contracts.tracking_plan import PROJECT_FILE

    return int(yaml.safe_load(PROJECT_FILE.read_text())["vars"]["session_timeout_minutes"]) * 60


SIGNUP_MILESTONE = "account_created"  # a user unknown to the snapshot signs up today
SESSION_GAP_S = _session_gap_s()  # a longer gap without events ends the session


@dataclass(frozen=True)
class Baseline:
    """A user's row of the snapshot (None fields when the user is not in it)."""

    features: dict[str, Any]
    raw_segments: frozenset[str]
    segments: tuple[str, ...]
    flow: str | None
    known: bool


@dataclass(frozen=True)
class Profile:
    segments: tuple[str, ...]
    primary_segment: str | None
    onboarding_flow: str | None
    experiment: str | None
    experiment_variant: str | None
    next_block: str | None


@dataclass(frozen=True)
class Emitted:
    """A segment_entered / segment_exited / trigger event, id as the daily sync makes it."""

    event_id: str
    person_id: str
    name: str
    timestamp: int
    data: dict[str, Any]


class Evaluator:
    """Evaluates the realtime rules for a batch of users."""

    def __init__(self, config: SegmentConfig, milestone_events: dict[str, str]):
        self.config = config
        self.milestone_of = milestone_events  # event name -> milestone
        self.realtime = [s for s in config.segments if s.realtime]
        self.triggers = [t for t in config.triggers if t.realtime]
        self.columns = sorted(
            {c for s in config.segments for c in s.rule.columns}
            | {c for t in config.triggers if t.rule for c in t.rule.columns}
            | {f"reached_{b.milestone}" for b in config.blocks.values()}
            | {"days_since_signup"}
        )
        self.reads_session = any(c in SESSION_COLUMNS for c in self.columns)
        # milestones `overlay` reads: a `reached_<m>` column, and a signup (days since signup)
        self.input_milestones = frozenset(
            {c[len("reached_") :] for c in self.columns if c.startswith("reached_")}
            | {SIGNUP_MILESTONE}
        )
        self.db = duckdb.connect(":memory:")
        self.evaluations = 0

    def overlay(
        self,
        base: Baseline,
        milestones: set[str],
        since_snapshot: int,
        session: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        row = dict(base.features)
        for column in self.columns:
            row.setdefault(column, None)
        row.update(session or {})
        for milestone in milestones:
            if f"reached_{milestone}" in row:
                row[f"reached_{milestone}"] = True
        if row.get("days_since_signup") is not None:
            row["days_since_signup"] = row["days_since_signup"] + since_snapshot
        elif not base.known and SIGNUP_MILESTONE in milestones:
            row["days_since_signup"] = 0
        return row

    def verdicts(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """One row per input row: rt_<i> per realtime segment, tr_<i> per realtime rule
        trigger (True/False; null counts as false like the daily step)."""
        frame = pd.DataFrame(rows, columns=self.columns)
        types = {**self.config.columns, **SESSION_COLUMNS}
        casts = ", ".join(f'cast("{c}" as {types[c]}) as "{c}"' for c in self.columns if c in types)
        selects, params = [], {}
        for i, segment in enumerate(self.realtime):
            selects.append(f"{segment.rule.sql} as rt_{i}")
            params.update(segment.rule.params)
        for i, trigger in enumerate(self.triggers):
            if trigger.rule is not None:
                selects.append(f"{trigger.rule.sql} as tr_{i}")
                params.update(trigger.rule.params)
        if not selects:
            return pd.DataFrame(index=range(len(rows)))
        self.db.register("_rows", frame)
        try:
            sql = f"select {', '.join(selects)} from (select {casts} from _rows)"
            out = self.db.execute(sql, params).df()
        finally:
            self.db.unregister("_rows")
        self.evaluations += len(rows) * len(selects)
        return out

    def resolve(
        self, user_ids: list[str], day: date, raws: list[set[str]], rows: list[dict]
    ) -> list[Profile]:
        names = self.config.segment_names
        frame = pd.DataFrame(
            {
                "user_id": user_ids,
                "segment_date": [pd.Timestamp(day)] * len(user_ids),
                **{f"seg_{i}": [n in raw for raw in raws] for i, n in enumerate(names)},
                **{
                    f"reached_{m}": [bool(r.get(f"reached_{m}")) for r in rows]
                    for m in sorted({b.milestone for b in self.config.blocks.values()})
                },
            }
        )
        table = _resolve(self.config, frame).to_pylist()
        return [
            Profile(
                tuple(t["segments"]),
                t["primary_segment"],
                t["onboarding_flow"],
                t["experiment"],
                t["experiment_variant"],
                t["next_block"],
            )
            for t in table
        ]

    def events(
        self,
        user_id: str,
        day_ts: int,
        before: tuple[str, ...],
        after: tuple[str, ...],
        fired: list[str],
    ) -> list[Emitted]:
        """Entered/exited and trigger events, with the daily sync's deterministic ids (same
        person, name, day and segment -> same id), so a destination drops a repeat."""
        out = []
        for name, segments in (
            ("segment_entered", sorted(set(after) - set(before))),
            ("segment_exited", sorted(set(before) - set(after))),
        ):
            for segment in segments:
                eid = event_ulid(user_id, name, day_ts, segment)
                out.append(Emitted(eid, user_id, name, day_ts, {"segment": segment}))
        entered = set(after) - set(before)
        for trigger in self.triggers:
            if trigger.entered_segment in entered:
                fired = [*fired, trigger.name]
        for name in dict.fromkeys(fired):
            data = {"source": "realtime"}
            out.append(Emitted(event_ulid(user_id, name, day_ts), user_id, name, day_ts, data))
        return out


def session_values(session: tuple | None, as_of: float | None) -> dict[str, float]:
    """`session.events` / `session.minutes` of a (started, last, events) session row: as of
    its latest event, or as of `as_of` while the session is open; none once it ended (null,
    as in the daily run)."""
    if session is None:
        return {}
    started, last, events = session
    if as_of is None:
        as_of = last
    elif as_of - last > SESSION_GAP_S:
        return {}
    return {"session__events": events, "session__minutes": (as_of - started) / 60}
