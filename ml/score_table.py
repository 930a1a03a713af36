"""Write the `user_scores` table for a range of days, streaming: each bounded chunk of days
is read from `fct_user_features`, scored and written before the next one is read, so peak
memory depends on the chunk (customers x chunk days), not on the length of the range.

Each chunk replaces its own days in one transaction; an interrupted range leaves whole days
behind, and re-running the range rewrites them.

Reason codes are written for the range's last day only: the sync, the realtime profiles and
the report read the latest day's codes, and exact codes cost ~20x the scores (a 100k x 180
backfill spent hours on codes nobody reads). A daily run's range is its one day, so a
deployment run daily keeps codes for every day; a backfill's earlier days keep null codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd
from threadpoolctl import threadpool_limits

from contracts.marts import USER_SCORES_DDL
from contracts.models import KINDS
from ml import row_blocks
from ml.scoring import Champions, absent_champions, load_champions, score_with

# The table is declared in contracts.marts (typed, not inferred from the first frame: a
# column all null on day one must still be typed for the segment rules that read it).
USER_SCORES_MIGRATIONS = (
    "alter table main.user_scores add column if not exists is_churned boolean",
)
REASON_COLUMNS = tuple(spec.reasons_column for spec in KINDS.values() if spec.reasons_column)
FEATURES_SQL = "select * from main.fct_user_features where snapshot_date between ? and ?"
DEFAULT_CHUNK_DAYS = 1
# An engine's own scoring (the Spark engine: the champions as Spark UDFs where the features
# live): given the champions and the range, it scores the range once and returns a reader of
# one chunk's predictions (user_id, snapshot_date, the champions' score columns).
EngineScores = Callable[[Champions, date, date], Callable[[date, date], pd.DataFrame]]


@dataclass
class ScoredRange:
    """What was written: row and day counts, and the last day's features and scores (the
    orchestration layer shows them and measures drift on them)."""

    rows: int
    days: int
    latest_features: pd.DataFrame
    latest_scores: pd.DataFrame
    missing: list[str] = field(default_factory=list)  # models without a champion


def chunks(days: Sequence[date], chunk_days: int) -> list[tuple[date, date]]:
    """Consecutive [first, last] date ranges covering `days`, at most `chunk_days` long."""
    if chunk_days < 1:
        raise ValueError(f"chunk_days must be at least 1, got {chunk_days}")
    ordered = sorted(set(days))
    out = []
    for i in range(0, len(ordered), chunk_days):
        part = ordered[i : i + chunk_days]
        out.append((part[0], part[-1]))
    return out


def _write(conn, scores: pd.DataFrame, first: date, last: date) -> None:
    conn.register("new_scores", scores)
    try:
        conn.execute("begin transaction")
        conn.execute("delete from main.user_scores where score_date between ? and ?", [first, last])
        conn.execute("insert into main.user_scores by name select * from new_scores")
        conn.execute("commit")
    finally:
        conn.unregister("new_scores")


def _codes_on_last_day_only(scores: pd.DataFrame, last_day: date) -> pd.DataFrame:
    """Null the reason codes of a multi-day chunk's earlier days (the same codes a chunk of
    one day would leave them: none)."""
    earlier = scores["score_date"] != last_day
    for column in REASON_COLUMNS:
        scores.loc[earlier, column] = None
    return scores


def write_user_scores(
    conn,
    tracking_uri: str,
    first_day: date,
    last_day: date,
    *,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    top_reasons: int = 3,
    n_threads: int | None = 1,
    workers: int | None = None,
    engine_scores: EngineScores | None = None,
) -> ScoredRange:
    """Score every day in [first_day, last_day] with the champions (loaded once) into
    `main.user_scores` of the DuckDB connection `conn`, `chunk_days` days at a time; the
    scores themselves from `engine_scores` when given (bands and reasons computed here).
    `n_threads` caps OpenMP; the tree walks run blocks of rows on `workers` threads of
    their own (None: every core; ml.row_blocks), with the same results on any number."""
    conn.execute(USER_SCORES_DDL)
    for statement in USER_SCORES_MIGRATIONS:
        conn.execute(statement)
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    rows, latest_features, latest_scores = 0, pd.DataFrame(), pd.DataFrame()
    ranges = chunks(days, chunk_days)
    # The champions load (MLflow and skops: Python) on a thread while DuckDB reads the first
    # chunk. Loaded before the cap: threadpoolctl caps only the libraries already loaded, and
    # loading the champions is what loads scikit-learn's OpenMP (capped after it, a 2-core
    # machine ran two spinning threads per predict: ~3 CPU s of a 1,000-user day's 3.5).
    with ThreadPoolExecutor(max_workers=1) as loader:
        loading = loader.submit(load_champions, tracking_uri)
        features = conn.execute(FEATURES_SQL, list(ranges[0])).df() if ranges else None
        champions = loading.result()
    with threadpool_limits(limits=n_threads), row_blocks.limit(workers):
        read_chunk = engine_scores(champions, first_day, last_day) if engine_scores else None
        for first, last in ranges:
            if features is None:
                features = conn.execute(FEATURES_SQL, [first, last]).df()
            dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            given = read_chunk(first, last) if read_chunk else None
            # Codes on the last chunk only, and there only for the last day (module doc).
            codes = top_reasons if last == last_day else 0
            scores = score_with(features, champions, dates, codes, given)
            if codes and first < last_day:
                scores = _codes_on_last_day_only(scores, last_day)
            _write(conn, scores, first, last)
            rows += len(scores)
            if last == last_day:
                day = pd.Timestamp(last_day)
                latest_features = features[pd.to_datetime(features["snapshot_date"]) == day]
                latest_scores = scores[scores["score_date"] == last_day]
            features = None
            del scores
    return ScoredRange(rows, len(days), latest_features, latest_scores, absent_champions(champions))
