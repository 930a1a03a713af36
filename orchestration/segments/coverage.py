"""Which segments could not be decided for everyone: `main.segment_coverage`.

A rule follows SQL null logic and a null result counts as "not a member" (rules.py). When a
column the rule needs is null (a score before its model exists, a value missing for part of
the population), a person left out of the segment may simply be undecided. Per segment and
day this table keeps the population, how many people the rule could not decide
(`undetermined`) and which of the rule's columns were null for them, so the report draws the
segment's size as a range (members .. members + undetermined) instead of a confident line,
and a segment nobody could be decided for is shown as such instead of disappearing.
Segments that read intraday `session.*` values are left out: those are null in the daily run
by design (session.py).
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from orchestration.segments.config import SegmentConfig
from orchestration.segments.session import uses_session

DDL = """create table if not exists main.segment_coverage (
    segment_date DATE, segment VARCHAR, population BIGINT, undetermined BIGINT,
    null_columns VARCHAR[])"""
COLUMNS = ["segment_date", "segment", "population", "undetermined", "null_columns"]


def coverage(
    conn: duckdb.DuckDBPyConnection, config: SegmentConfig, relation: str, dates: list[date]
) -> pd.DataFrame:
    """One scan of the input: per day and segment, the population, the people whose rule was
    null (undetermined) and the rule's columns that were null for some of them."""
    segments = [s for s in config.segments if not uses_session(s.rule.columns)]
    if not segments:
        return pd.DataFrame(columns=COLUMNS)
    params: dict[str, object] = {"dates": dates}
    selects = ["count(*) as population"]
    for i, segment in enumerate(segments):
        params.update(segment.rule.params)
        unknown = segment.rule.unknown_sql
        selects.append(f"count(*) filter (where {unknown}) as u_{i}")
        selects += [
            f'count(*) filter (where {unknown} and "{c}" is null) as "n_{i}_{c}"'
            for c in segment.rule.columns
        ]
    counts = conn.execute(
        f"select snapshot_date, {', '.join(selects)} from {relation} "
        "where snapshot_date in (select unnest($dates::DATE[])) group by 1 order by 1",
        params,
    ).df()
    rows = [
        (
            pd.Timestamp(day["snapshot_date"]).date(),
            segment.name,
            int(day["population"]),
            int(day[f"u_{i}"]),
            [c for c in segment.rule.columns if day[f"n_{i}_{c}"] > 0],
        )
        for _, day in counts.iterrows()
        for i, segment in enumerate(segments)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def write_coverage(
    conn: duckdb.DuckDBPyConnection, config: SegmentConfig, relation: str, dates: list[date]
) -> pd.DataFrame:
    """Replace `dates`' rows of `main.segment_coverage`; returns the partly decided rows."""
    frame = coverage(conn, config, relation, dates)
    conn.execute(DDL)
    conn.execute(
        "delete from main.segment_coverage where segment_date in (select unnest($dates::DATE[]))",
        {"dates": dates},
    )
    if len(frame):
        conn.register("_coverage", frame)
        conn.execute(
            "insert into main.segment_coverage select segment_date, segment, population, "
            "undetermined, null_columns::VARCHAR[] from _coverage"
        )
        conn.unregister("_coverage")
    return frame[frame["undetermined"] > 0]
