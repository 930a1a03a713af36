"""Writers for the demo generator: seeded UUIDs and the per-day files in the landing layout.

Lines are built by DuckDB from numpy columns (json_object / strftime) because formatting tens of
millions of JSON lines in Python would dominate the run time; the output order is fixed by an
explicit row number so the files are byte-identical for a seed.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_HEX = np.frombuffer(b"0123456789abcdef", dtype="S1")
_UUID_HEX_POS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def seeded_uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` version-4 UUID strings (as a numpy bytes array 'S36') drawn from the seed RNG."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype="S1")
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    out = np.full((n, 36), b"-", dtype="S1")
    out[:, _UUID_HEX_POS] = digits
    return out.view("S36").ravel()


def seeded_hex_ids(rng: np.random.Generator, n: int, prefix: str, length: int = 12) -> np.ndarray:
    raw = rng.integers(0, 16, size=(n, length), dtype=np.uint8)
    body = _HEX[raw].view(f"S{length}").ravel()
    return np.char.add(prefix.encode(), body)


def to_arrow_strings(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.binary()).cast(pa.string())


EVENT_LINE_SQL = """
with ev as (
  select e.*, u.user_id as known_user_id, u.anonymous_id as known_anonymous_id, u.email, u.company,
         u.locale, u.user_agent, u.ip
  from day_events e left join demo_users u on u.pos = e.user_pos
), obj as (
  select row_no, defect,
    list_element($types, type + 1) as type_name,
    list_element($names, name_code + 1) as event_name,
    mid,
    case when with_user and defect <> 'null_user_id' and defect <> 'null_user_and_anonymous_id'
         then known_user_id end as user_id,
    case when defect = 'null_user_and_anonymous_id' then null
         else coalesce(visitor_anonymous_id, known_anonymous_id) end as anonymous_id,
    strftime(make_timestamp(ts_us), '%Y-%m-%dT%H:%M:%S.%gZ') as ts,
    strftime(make_timestamp(recv_us), '%Y-%m-%dT%H:%M:%S.%gZ') as rts,
    case prop_kind
      when 1 then json_object('from_plan', list_element($plans, from_plan + 1),
                              'to_plan', list_element($plans, plan + 1), 'mrr', amount)
      when 2 then json_object('plan', list_element($plans, from_plan + 1),
                              'reason', list_element($reasons, detail + 1))
      when 3 then json_object('priority', list_element($priorities, detail % 3 + 1),
                              'category', list_element($categories, detail + 1))
      when 4 then json_object('path', list_element($paths, page + 1),
                              'url', 'https://app.example.com' || list_element($paths, page + 1),
                              'title', list_element($names, name_code + 1))
      when 5 then json_object('email', email, 'plan', list_element($plans, plan + 1),
                              'company', company)
      else json_object('plan', list_element($plans, plan + 1))
    end as properties,
    json_object('library', json_object('name', 'analytics.js', 'version', '4.15.3'),
                'page', json_object('path', list_element($paths, page + 1)),
                'ip', coalesce(ip, '198.51.100.' || (row_no % 250)::varchar),
                'userAgent', coalesce(user_agent, 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)'),
                'locale', coalesce(locale, 'en-US')) as context
  from ev
), line as (
  select row_no, defect, case type_name
    when 'track' then json_object('messageId', mid, 'type', type_name, 'event', event_name,
        'userId', user_id, 'anonymousId', anonymous_id, 'timestamp', ts, 'receivedAt', rts,
        'properties', properties, 'context', context)
    when 'page' then json_object('messageId', mid, 'type', type_name, 'name', event_name,
        'userId', user_id, 'anonymousId', anonymous_id, 'timestamp', ts, 'receivedAt', rts,
        'properties', properties, 'context', context)
    else json_object('messageId', mid, 'type', type_name, 'userId', user_id,
        'anonymousId', anonymous_id, 'timestamp', ts, 'receivedAt', rts,
        'properties', properties, 'context', context)
    end::varchar as text
  from obj
)
select case when defect = 'malformed_json' then left(text, length(text) // 2) else text end
       || chr(10) as line
from line order by row_no
"""


def event_lines(conn: duckdb.DuckDBPyConnection, events: pa.Table, params: dict) -> pa.Array:
    """Render one day's events (already ordered by row_no) to newline-terminated JSON lines."""
    conn.register("day_events", events)
    try:
        table = conn.sql(EVENT_LINE_SQL, params=params).to_arrow_table()
    finally:
        conn.unregister("day_events")
    return table.column("line").combine_chunks().cast(pa.large_string())


def lines_bytes(lines: pa.Array) -> bytes:
    """Concatenate newline-terminated strings via the Arrow value buffer (no Python loop)."""
    if len(lines) == 0:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


CONTACTS_CSV_SQL = """
copy (
  select user_id, email, strftime(signup_at, '%Y-%m-%dT%H:%M:%SZ') as signup_at, company, industry,
         company_size, country, role, plan, acquisition_channel,
         strftime(updated_at, '%Y-%m-%dT%H:%M:%SZ') as updated_at
  from day_contacts order by row_no
) to '{path}' (format csv, header true)
"""


def write_contacts_csv(conn: duckdb.DuckDBPyConnection, rows: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn.register("day_contacts", rows)
    try:
        conn.execute(CONTACTS_CSV_SQL.format(path=str(path).replace("'", "''")))
    finally:
        conn.unregister("day_contacts")


def write_parquet(rows: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, path, compression="zstd")
