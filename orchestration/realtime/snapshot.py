"""The read-optimised snapshot of the latest daily results: one SQLite file per user row,
built from the warehouse after each daily run and swapped in atomically (write a temp file,
`os.replace`), so `segflow serve` and the consumer never open the DuckDB writer file.

Per user, for the latest segment date: the features the realtime rules, triggers and flow
blocks read; each segment rule's own verdict before exclusions (the consumer replaces the
realtime ones and re-resolves); the assigned segments, flow, experiment arm and next block;
scores with their bands and top reasons. People with a privacy request
(`privacy_suppressions`) are left out and listed in `suppressed`: serve answers them with
the unknown-user default and the consumer neither applies nor sends anything for them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from contracts.models import score_fields
from orchestration.activation.privacy import suppressed_ids
from orchestration.segments.config import SegmentConfig
from orchestration.segments.tables import input_relation

SCORE_FIELDS = score_fields()
SNAPSHOT_DDL = """
create table users (user_id text primary key, features text not null, raw_segments text not null,
    segments text not null, primary_segment text, onboarding_flow text, experiment text,
    experiment_variant text, next_block text, scores text not null);
create table meta (key text primary key, value text);
create table suppressed (user_id text primary key);
"""


def snapshot_columns(config: SegmentConfig) -> list[str]:
    """Feature columns the intraday evaluation needs (rules, triggers, blocks, signup age)."""
    return sorted(config.referenced_columns() | {"days_since_signup"})


def build_snapshot(conn: duckdb.DuckDBPyConnection, config: SegmentConfig, path: Path) -> dict:
    """Write the snapshot of the latest `user_segments` day to `path` atomically; returns
    {"snapshot_date", "users"} for metadata."""
    day = conn.execute("select max(segment_date) from main.user_segments").fetchone()[0]
    if day is None:
        raise ValueError("main.user_segments is empty: run the segments step before a snapshot")
    relation, _ = input_relation(conn, (day, day))  # prunes both tables to the day
    params: dict[str, Any] = {"d": day}
    verdicts = []
    for index, segment in enumerate(config.segments):
        verdicts.append(f"{segment.rule.sql} as seg_{index}")
        params.update(segment.rule.params)
    suppressed = sorted(suppressed_ids(conn))  # privacy: never served, never sent intraday
    features = ", ".join(f'f."{c}"' for c in snapshot_columns(config))
    scores = ", ".join(f'f."{c}"' for c in SCORE_FIELDS)
    rows = conn.execute(
        f"select s.*, {features}, {scores}, {', '.join(verdicts)} "
        f"from main.user_segments s join {relation} f "
        "on f.user_id = s.user_id and f.snapshot_date = s.segment_date "
        "where s.segment_date = $d order by s.user_id",
        params,
    ).df()
    keep = ~rows["user_id"].isin(set(suppressed)).to_numpy()
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    try:
        db.executescript(SNAPSHOT_DDL)
        db.executemany(
            "insert into users values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _rows(config, rows[keep])
        )
        db.executemany("insert into suppressed values (?)", [(u,) for u in suppressed])
        db.execute("insert into meta values ('snapshot_date', ?)", (day.isoformat(),))
        db.commit()
    finally:
        db.close()
    os.replace(tmp, path)
    return {
        "snapshot_date": day.isoformat(),
        "users": int(keep.sum()),
        "suppressed": len(suppressed),
    }


PLAIN_COLUMNS = ("primary_segment", "onboarding_flow", "experiment", "experiment_variant")
PLAIN_COLUMNS = (*PLAIN_COLUMNS, "next_block")


def _rows(config: SegmentConfig, frame: pd.DataFrame) -> zip:
    """The `users` rows, built column by column (a Python call per value cost ~20 s for
    100k users): the same values and JSON text as one json.dumps per row gives."""
    verdicts = np.zeros(len(frame), dtype=np.int64)
    for i in range(len(config.segments)):
        verdict = frame[f"seg_{i}"].fillna(False).astype(bool).to_numpy()
        verdicts |= verdict.astype(np.int64) << i
    names = [s.name for s in config.segments]
    raw = {
        mask: json.dumps([n for i, n in enumerate(names) if mask >> i & 1])
        for mask in set(verdicts.tolist())
    }
    lists: dict[tuple, str] = {}
    segments = []
    for value in frame["segments"].tolist():
        key = () if value is None or value is pd.NA else tuple(value)
        if key not in lists:
            lists[key] = json.dumps(list(key))
        segments.append(lists[key])
    return zip(
        frame["user_id"].tolist(),
        _json_objects(frame, snapshot_columns(config)),
        [raw[mask] for mask in verdicts.tolist()],
        segments,
        *(_plain_column(frame[c]) for c in PLAIN_COLUMNS),
        _json_objects(frame, list(SCORE_FIELDS)),
        strict=True,
    )


def _json_objects(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """json.dumps({column: value, ...}) of each row (default separators), column-wise: the
    values' texts per column, then one %-format per row into the keys' template."""
    if not columns:
        return ["{}"] * len(frame)
    template = "{" + ", ".join(json.dumps(c).replace("%", "%%") + ": %s" for c in columns) + "}"
    texts = [_json_values(_plain_column(frame[column])) for column in columns]
    return [template % row for row in zip(*texts, strict=True)]


def _json_values(values: list) -> list[str]:
    """json.dumps(v) of each value: numbers, booleans and nulls in one call, other values
    once per distinct value (bands, plans, reason codes repeat)."""
    kinds = {type(v) for v in values}
    if values and kinds <= {int, float, bool, type(None)}:
        return json.dumps(values)[1:-1].split(", ")
    if kinds <= {str, int, float, bool, type(None)}:
        texts: dict = {}
        keys = [(type(v), v) for v in values]  # True and 1 are one dict key
        return [texts[k] if k in texts else texts.setdefault(k, json.dumps(k[1])) for k in keys]
    return [json.dumps(v) for v in values]


def _plain_column(series: pd.Series) -> list:
    """`_plain` of every value of a column; numbers, booleans and strings in one call."""
    kind = series.dtype.kind
    if isinstance(series.dtype, np.dtype) and kind in "iub":
        return series.tolist()
    if isinstance(series.dtype, np.dtype) and kind == "f":
        return [None if v != v else v for v in series.tolist()]
    if not isinstance(series.dtype, np.dtype) and kind in "iub":  # nullable Int32, boolean
        return series.astype(object).where(series.notna(), None).tolist()
    values = series.tolist()
    if {type(v) for v in values} <= {str, type(None)}:
        return values
    return [_plain(v) for v in values]


def _plain(value: Any) -> Any:
    """JSON-safe Python value (numpy scalars, NaN/NaT -> None, dates -> ISO)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def snapshot_date(db: sqlite3.Connection) -> date | None:
    row = db.execute("select value from meta where key = 'snapshot_date'").fetchone()
    return date.fromisoformat(row[0]) if row else None


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection (the file is replaced, never modified, so reopen per swap)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    return db
