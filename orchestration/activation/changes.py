"""Set-based diff of the desired people (payload.desired_people_sql) against what the
destination acknowledged (`sync_state`) and what failed before (`sync_failures`).

One DuckDB statement classifies every person as new / changed / cleared / unchanged by the md5
of their canonical attribute JSON, so an unchanged person never reaches Python; only changed
people are fetched (with their previous payload, to send only the changed attributes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from ..warehouse import table_exists
from .payload import PayloadOptions, desired_people_sql, without_score_only_sql

PEOPLE_TABLE = "_sync_people"  # temp table of this run's classification (session-local)
CHANGED_COLUMNS = (
    "person_id",
    "change",
    "payload",
    "payload_hash",
    "previous",
    "attempts",
    "given_up",
    "same_payload_failed",
)


@dataclass
class PeopleChanges:
    counts: dict[str, int]  # people per change type: new, changed, cleared, unchanged
    scores_only: int  # of the changed: only SCORE_ONLY_ATTRIBUTES differ (payload.py)
    known: int  # people the destination holds segflow attributes for (non-empty sync_state)
    invalid: list[tuple[str, str]]  # (person key, why the input rows cannot be used)
    changed: list[dict[str, Any]]  # CHANGED_COLUMNS per new/changed/cleared person, by id


def classify_people(
    conn: duckdb.DuckDBPyConnection, destination: str, as_of: date, options: PayloadOptions
) -> PeopleChanges:
    """Classify everyone in user_segments on `as_of` or in sync_state into PEOPLE_TABLE.

    Blank ids and people with more than one row on `as_of` are returned as `invalid` (and are
    neither sent nor cleared). A person gone from user_segments is diffed against '{}'."""
    state = (
        "select person_id, payload_hash, payload::VARCHAR as payload from main.sync_state "
        "where destination = $destination"
        if table_exists(conn, "main", "sync_state")
        else "select NULL::VARCHAR as person_id, NULL::VARCHAR as payload_hash, "
        "NULL::VARCHAR as payload where false"
    )
    failures = (
        "select item_key, payload_hash, attempts, given_up from main.sync_failures "
        "where destination = $destination and item_kind = 'person'"
        if table_exists(conn, "main", "sync_failures")
        else "select NULL::VARCHAR as item_key, NULL::VARCHAR as payload_hash, NULL::INTEGER as "
        "attempts, NULL::BOOLEAN as given_up where false"
    )
    sql = f"""
        create or replace temp table {PEOPLE_TABLE} as
        with desired as ({desired_people_sql(conn, options)}),
        counted as (select *, count(*) over (partition by person_id) as n from desired),
        state as ({state}),
        failures as ({failures}),
        joined as (
            select coalesce(c.person_id, s.person_id) as person_id,
                coalesce(c.payload, '{{}}') as payload, md5(coalesce(c.payload, '{{}}')) as hash,
                s.person_id is not null as known, s.payload_hash as previous_hash,
                s.payload as previous
            from (select * from counted where n = 1 and person_id is not null) c
            full outer join state s on s.person_id = c.person_id
            where coalesce(c.person_id, s.person_id) not in (
                select person_id from counted where n > 1 and person_id is not null)
        )
        select j.person_id, j.payload, j.hash as payload_hash, j.previous,
            case when not j.known then (case when j.payload = '{{}}' then 'unchanged' else 'new' end)
                 when j.previous_hash = j.hash then 'unchanged'
                 when j.payload = '{{}}' then
                      (case when j.previous = '{{}}' then 'unchanged' else 'cleared' end)
                 else 'changed' end as change,
            j.known and j.previous_hash <> j.hash and j.payload <> '{{}}'
                and {without_score_only_sql("j.previous")} = {without_score_only_sql("j.payload")}
                as scores_only,
            f.attempts, coalesce(f.given_up, false) as given_up,
            coalesce(f.payload_hash = j.hash, false) as same_payload_failed
        from joined j left join failures f on f.item_key = j.person_id
    """
    params: dict[str, Any] = {"as_of": as_of}
    if "$destination" in sql:  # only when sync_state / sync_failures exist
        params["destination"] = destination
    conn.execute(sql, params)
    counts = dict.fromkeys(("new", "changed", "cleared", "unchanged"), 0)
    counts.update(
        dict(
            conn.execute(f"select change, count(*) from {PEOPLE_TABLE} group by change").fetchall()
        )
    )
    scores_only = conn.execute(
        f"select count(*) from {PEOPLE_TABLE} where change = 'changed' and scores_only"
    ).fetchone()[0]
    known = conn.execute(
        f"select count(*) from {PEOPLE_TABLE} where previous is not null and previous <> '{{}}'"
    ).fetchone()[0]
    invalid = [
        ("<null>", f"{n} user_segments row(s) with a null/empty user_id")
        if pid is None
        else (pid, f"user_segments has more than one row for user_id on {as_of}")
        for pid, n in conn.execute(
            "select nullif(user_id::VARCHAR, '') as person_id, count(*) from main.user_segments "
            "where segment_date = $as_of group by 1 having person_id is null or count(*) > 1 "
            "order by 1",
            {"as_of": as_of},
        ).fetchall()
    ]
    cursor = conn.execute(
        f"select {', '.join(CHANGED_COLUMNS)} from {PEOPLE_TABLE} "
        "where change <> 'unchanged' order by person_id"
    )
    changed = [dict(zip(CHANGED_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    return PeopleChanges(counts, scores_only, known, invalid, changed)
