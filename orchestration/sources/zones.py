"""Zoneless wall times to UTC without a time zone library call per row.

A zone's UTC offset changes on a few days a year; on every other local day one offset holds
from 00:00 to 24:00 (no zone changes and changes back within one day). `zone_days` asks DuckDB's own zone data (the one its conversions use)
once per zone and process for each day of 1990-2060: the offset, or null on a day a
change happens (and the day after: a change at midnight puts its gap on the next date). A wall
time is then `wall + offset[day]`, a list lookup; only the null days (and days outside the
range) pay for DuckDB's `timezone(...)`, which is slow and serialised across threads. The same
days are the only ones on which a wall time can fall in a daylight-saving gap or overlap.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import duckdb
import pyarrow as pa

FIRST_DAY = date(1990, 1, 1)  # the table's days; other days (rare) use timezone() per row
_LAST_DAY = date(2060, 12, 31)
_TABLE = "_segflow_zone_offsets_"  # + a slug of the zone: one registered Arrow table per zone
_SLUGS: dict[str, str] = {}  # slug -> zone, for `register_zone_offsets`


_CACHE: dict[str, tuple[tuple[date, ...], pa.Table]] = {}


def zone_days(
    zone: str, conn: duckdb.DuckDBPyConnection | None = None
) -> tuple[tuple[date, ...], pa.Table]:
    """(the local days on which `zone`'s offset changes, and the day after; a one-row Arrow
    table holding `offsets`: seconds from wall time to UTC per day from FIRST_DAY, null on
    those days). One vectorised DuckDB query per zone (on a cursor of `conn`, when given:
    cheaper than a new database), cached."""
    if zone in _CACHE:
        return _CACHE[zone]
    cursor = conn.cursor() if conn is not None else duckdb.connect()
    try:
        table = cursor.sql(
            """with d as (
                 select d::date as day, (epoch(timezone($z, d)) - epoch(d))::integer as o0
                 from range($lo::timestamp, $hi::timestamp, interval 1 day) t(d)),
               m as (select day, o0, o0 <> lead(o0) over (order by day) as moved from d),
               c as (select day, o0, moved or coalesce(lag(moved) over (order by day), false)
                       as change from m)
               select list(case when change then null else o0 end order by day) as offsets,
                      coalesce(list(day order by day) filter (where change), []) as days
               from c where day <= $last""",
            params={
                "z": zone,
                "lo": FIRST_DAY,
                "hi": _LAST_DAY + timedelta(days=2),
                "last": _LAST_DAY,
            },
        ).to_arrow_table()
    finally:
        cursor.close()
    _CACHE[zone] = tuple(table["days"][0].as_py()), table.select(["offsets"])
    return _CACHE[zone]


def transition_days(zone: str) -> tuple[date, ...]:
    """Local dates (1990-2060) on which `zone`'s UTC offset changes, and the day after:
    the only dates a wall time can fall in a daylight-saving gap or overlap."""
    return () if zone == "UTC" else zone_days(zone)[0]


def _day_index(wall: str) -> str:
    # a day before FIRST_DAY gives index <= 0, which must not wrap to the list's end
    return f"greatest(({wall})::date - date '{FIRST_DAY.isoformat()}' + 1, 0)"


def offset_sql(wall: str) -> str:
    """SQL: the offset (seconds) of the wall time `wall`'s day, null on a change day (`_zo`)."""
    return f'"_zo"[{_day_index(wall)}]'


def on_change_day_sql(wall: str, offset: str | None = None) -> str:
    """SQL: whether the wall time `wall` is on a day its zone changes offset (or outside the
    table): the only wall times that can be in a gap or overlap (needs `_zo`). `offset`: a
    column already holding `offset_sql(wall)`."""
    return f"(({wall}) is not null and {offset or offset_sql(wall)} is null)"


def wall_to_utc_sql(wall: str, zone: str, offset: str | None = None) -> str:
    """SQL: the naive wall time `wall` (read in `zone`) as a naive UTC timestamp, equal to
    `timezone('UTC', timezone(zone, wall))`; reads the column `_zo` that `zone_offsets_join`
    adds (a one-row cross join: the list is one constant per chunk, not copied per row);
    `offset`: a column already holding `offset_sql(wall)` (one list lookup per row, not two)."""
    quoted = "'" + zone.replace("'", "''") + "'"
    # epoch arithmetic: `wall + to_seconds(offset)` splits each timestamp into a date and a
    # time and joins them again (~12 ns a value); an offset exists only for a day of the table
    # (finite, in range), so the two agree wherever it is not null
    return (
        f"coalesce(make_timestamp(epoch_us({wall}) + {offset or offset_sql(wall)} * 1000000::bigint), "
        f"timezone('UTC', timezone({quoted}, {wall})))"
    )


def zone_offsets_join(zone: str) -> str:
    """SQL appended to a FROM clause: the column `_zo` (`zone`'s offsets) for
    `wall_to_utc_sql`; the query needs `register_zone_offsets` before it runs."""
    if zone == "UTC":
        return ""
    slug = re.sub(r"[^a-z0-9]", "_", zone.lower())
    _SLUGS[slug] = zone
    return f" cross join (select offsets as _zo from {_TABLE}{slug})"


def register_zone_offsets(conn: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Register on `conn` the offset tables `sql` reads (`zone_offsets_join`)."""
    for slug in set(re.findall(_TABLE + r"(\w+)", sql)):
        conn.register(_TABLE + slug, zone_days(_SLUGS[slug], conn)[1])
