"""A user's profile as the product sees it: the snapshot of the latest daily run, overridden
by the consumer's intraday result when there is one newer than the snapshot. Read-only on both
files (the snapshot SQLite swapped after each run, the consumer's state SQLite in WAL mode);
never the DuckDB warehouse."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import date
from pathlib import Path
from typing import Any

from contracts.models import KINDS
from orchestration.realtime import state
from orchestration.realtime.intraday import Baseline
from orchestration.realtime.snapshot import open_readonly, snapshot_date


class SnapshotReader:
    """Reads the snapshot file, reopening it when it was swapped (inode changed)."""

    def __init__(self, path: Path):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._date: date | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        inode = (stat.st_ino, stat.st_mtime_ns)
        with self._lock:
            if inode != self._inode:
                # the old connection is not closed here: a request in another thread may still
                # be reading it; it closes when the last reference goes
                self._db, self._inode = open_readonly(self.path), inode
                self._date = snapshot_date(self._db)
            return self._db

    def version(self) -> float:
        """When the current snapshot file was written (0 when there is none)."""
        self._conn()
        return self._inode[1] / 1e9 if self._inode else 0.0

    def snapshot_date(self) -> date | None:
        return self._date if self._conn() is not None else None

    @property
    def opened_date(self) -> date | None:
        """The date of the snapshot opened last (no file check: right after `row`)."""
        return self._date

    def row(self, user_id: str) -> tuple | None:
        """The user's snapshot row, or None when absent or under a privacy request (one
        file check and one query: this is serve's hot path)."""
        db = self._conn()
        if db is None:
            return None
        return db.execute(
            "select features, raw_segments, segments, primary_segment, onboarding_flow, "
            "experiment, experiment_variant, next_block, scores from users where user_id = ?1 "
            "and not exists (select 1 from suppressed where user_id = ?1)",
            (user_id,),
        ).fetchone()

    def suppressed(self, user_ids: list[str]) -> set[str]:
        """Which of `user_ids` have a privacy request (delete or suppress)."""
        db = self._conn()
        if db is None or not user_ids:
            return set()
        out: set[str] = set()
        for start in range(0, len(user_ids), 900):  # below SQLite's parameter limit
            chunk = user_ids[start : start + 900]
            sql = f"select user_id from suppressed where user_id in ({','.join('?' * len(chunk))})"
            out.update(r[0] for r in db.execute(sql, chunk))
        return out

    def reached(self, user_ids: list[str], milestones: list[str]) -> dict[str, set[str]]:
        """{user: the `milestones` whose `reached_<milestone>` feature is true in the
        snapshot} (read in SQLite, without decoding the users' features)."""
        db = self._conn()
        if db is None or not user_ids or not milestones:
            return {}
        checks = ", ".join("json_extract(features, ?)" for _ in milestones)
        paths = [f'$."reached_{m}"' for m in milestones]
        out: dict[str, set[str]] = {}
        for start in range(0, len(user_ids), 900):  # below SQLite's parameter limit
            chunk = user_ids[start : start + 900]
            sql = f"select user_id, {checks} from users where user_id in ({','.join('?' * len(chunk))})"
            for user, *flags in db.execute(sql, [*paths, *chunk]):
                out[user] = {m for m, flag in zip(milestones, flags, strict=True) if flag}
        return out

    def baseline(self, user_id: str) -> Baseline:
        return self.baselines([user_id])[user_id]

    def baselines(self, user_ids: list[str]) -> dict[str, Baseline]:
        """Snapshot rows of many users (absent users: an unknown baseline)."""
        out = dict.fromkeys(user_ids, UNKNOWN)
        db = self._conn()
        if db is None or not user_ids:
            return out
        for start in range(0, len(user_ids), 900):  # below SQLite's parameter limit
            chunk = user_ids[start : start + 900]
            for user, features, raw, segments, flow in db.execute(
                "select user_id, features, raw_segments, segments, onboarding_flow from users "
                f"where user_id in ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[user] = Baseline(
                    json.loads(features),
                    frozenset(json.loads(raw)),
                    tuple(json.loads(segments)),
                    flow,
                    True,
                )
        return out


UNKNOWN = Baseline({}, frozenset(), (), None, False)


class ProfileReader:
    """Builds `GET /v1/profiles/{user_id}` answers."""

    def __init__(self, snapshot_path: Path, state_path: Path, config, reasons: dict[str, str]):
        self.snapshot = SnapshotReader(snapshot_path)
        self.state_path = state_path
        self.config = config
        self.reasons = reasons  # segment -> rule text, the "why" of a membership
        self._local = threading.local()

    def _state(self) -> sqlite3.Connection | None:
        db = getattr(self._local, "db", None)
        if db is None and self.state_path.exists():
            db = self._local.db = state.connect(self.state_path, readonly=True)
        return db

    def profile(self, user_id: str) -> dict[str, Any] | None:
        """The profile, or None for a user segflow has never seen or may not show (a privacy
        request): callers answer with `default`."""
        snap = self.snapshot.row(user_id)
        if snap is None and self.snapshot.suppressed([user_id]):
            return None
        snap_day = self.snapshot.opened_date
        live = None
        db = self._state()
        if db is not None:
            live = db.execute(
                "select day, segments, primary_segment, onboarding_flow, experiment, "
                "experiment_variant, next_block, updated_at from profile where user_id = ?",
                (user_id,),
            ).fetchone()
            if live and snap_day and live[0] <= snap_day.isoformat():
                live = None  # the daily run has caught up: its result wins
        if snap is None and live is None:
            return None
        if live is not None:
            segments, primary, flow, experiment, variant, block = (json.loads(live[1]), *live[2:7])
            source, as_of = "intraday", live[0]
        else:
            segments, primary, flow, experiment, variant, block = (json.loads(snap[2]), *snap[3:8])
            source, as_of = "daily", snap_day.isoformat() if snap_day else None
        scores = json.loads(snap[8]) if snap else {}
        return {
            "user_id": user_id,
            "known": True,
            "source": source,
            "as_of": as_of,
            "segments": [{"name": s, "reason": self.reasons.get(s, "")} for s in segments],
            "primary_segment": primary,
            "onboarding_flow": flow,
            "next_block": block,
            "experiment": {"name": experiment, "arm": variant} if experiment else None,
            "scores": _scores(scores),
        }

    def default(self, user_id: str) -> dict[str, Any]:
        """The documented answer for an unknown user: the default flow and its first block,
        no segments, no scores."""
        flow = self.config.default_flow
        blocks = self.config.flows[flow].blocks if flow else ()
        return {
            "user_id": user_id,
            "known": False,
            "source": "default",
            "as_of": None,
            "segments": [],
            "primary_segment": None,
            "onboarding_flow": flow,
            "next_block": blocks[0] if blocks else None,
            "experiment": None,
            "scores": {},
        }


def _scores(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in KINDS.items():
        if values.get(spec.score_column) is None:
            continue
        out[name] = {"score": values[spec.score_column]}
        if spec.banded:
            out[name]["band"] = values.get(spec.band_column)
            out[name]["top_reasons"] = _reasons(values.get(spec.reasons_column))
    return out


def _reasons(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [r.strip() for r in value.split(",") if r.strip()]
    return list(value) if isinstance(value, list) else [value]
