"""`segment_membership` (SCD type 2) derived from `user_segments`.

A stint is a run of consecutive days on which the user carries the segment; entered_at is its
first day, exited_at the first day without it (null while it reaches the latest segment_date).
Because stints are a pure function of `user_segments`, re-runs and backfills give the same
history as daily runs. Incremental rebuild from day d0: stints touching d0 or later are
deleted and rebuilt from user_segments days >= d0 - 1; a rebuilt stint that starts at d0 - 1
takes its real start from the deleted stint that covered d0 - 1 (that day is unchanged).
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from orchestration.segments.tables import ensure_tables

_STINTS = """
with days as (
    select user_id, segment_date, unnest(segments) as segment
    from main.user_segments where segment_date >= $window_start
),
islands as (
    select user_id, segment, segment_date,
           segment_date - cast(row_number() over (
               partition by user_id, segment order by segment_date) as integer) as grp
    from days
),
stints as (
    select user_id, segment, min(segment_date) as first_day, max(segment_date) as last_day
    from islands group by user_id, segment, grp
)
select st.user_id, st.segment,
       case when st.first_day = $window_start and c.entered_at is not null
            then c.entered_at else st.first_day end as entered_at,
       case when st.last_day = (select max(segment_date) from main.user_segments)
            then null else st.last_day + 1 end as exited_at
from stints st
left join _covering c on c.user_id = st.user_id and c.segment = st.segment
"""


def rebuild_membership(conn: duckdb.DuckDBPyConnection, from_date: date | None = None) -> int:
    """Rebuild stints from `from_date` onward (None = the whole history); returns the
    number of stints written. Runs in one transaction."""
    ensure_tables(conn)
    conn.execute("begin transaction")
    try:
        if from_date is None:
            window_start = conn.execute(
                "select coalesce(min(segment_date), date '1970-01-01') from main.user_segments"
            ).fetchone()[0]
            conn.execute(
                "create or replace temp table _covering as select user_id, segment, "
                "entered_at from main.segment_membership where false"
            )
            conn.execute("delete from main.segment_membership")
        else:
            window_start = from_date - timedelta(days=1)
            conn.execute(
                "create or replace temp table _covering as select user_id, segment, entered_at "
                "from main.segment_membership where entered_at <= $w "
                "and (exited_at is null or exited_at > $w)",
                {"w": window_start},
            )
            conn.execute(
                "delete from main.segment_membership where exited_at is null or exited_at >= $d0",
                {"d0": from_date},
            )
        written = conn.execute(
            f"insert into main.segment_membership {_STINTS}", {"window_start": window_start}
        ).fetchone()[0]
        conn.execute("drop table _covering")
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    return int(written)
