"""The plain-DuckDB side of bench/transform.py: a hand-written script computing the same
core tables as the dbt project (de-duplicated events, identity map, stitched events, sessions,
daily activity, a point-in-time feature row per user per day), to compare CPU seconds."""

from __future__ import annotations

from contracts import tracking_plan

# The plain-DuckDB way: hash aggregates where possible, one sort for sessions (lag/lead and
# running counts in one window pass, then the boundary rows), one for active minutes, and a
# dense user x day grid with rolling frames for the features. $core = the core-feature events.
BASELINE_SQL = """
create or replace table plain_events as
with dup as (select hash(message_id) as h from raw.events where message_id is not null
             group by 1 having count(*) > 1)
select message_id, lower(type) as event_type, event as event_name,
       nullif(trim(user_id), '') as user_id, nullif(trim(anonymous_id), '') as anonymous_id,
       "timestamp" as event_at, _partition_date as partition_date
from raw.events e where message_id is not null and hash(message_id) not in (select h from dup)
union all
select * from (
  select message_id, lower(type), event, nullif(trim(user_id), ''), nullif(trim(anonymous_id), ''),
         "timestamp", _partition_date
  from raw.events e where message_id is not null and hash(message_id) in (select h from dup)
  qualify row_number() over (partition by message_id order by received_at, _partition_date,
                             _source_file, _source_line, "timestamp") = 1);

create or replace table plain_identity as
select anonymous_id, arg_min(user_id, (event_at, message_id)) as user_id,
       min(event_at) as first_identified_at
from plain_events where anonymous_id is not null and user_id is not null group by 1;

create or replace table plain_stitched as
select e.message_id, coalesce(e.user_id, i.user_id) as user_id, e.event_type, e.event_name,
       e.event_at
from plain_events e left join plain_identity i
  on e.user_id is null and e.anonymous_id = i.anonymous_id
where coalesce(e.user_id, i.user_id) is not null;

create or replace table plain_event_gaps as
select user_id, message_id, event_at, event_at::date as d, event_type, event_name,
       lag(event_at) over w as prev_at, lead(event_at) over w as next_at,
       count(*) over (w rows unbounded preceding) as n_so_far
from plain_stitched window w as (partition by user_id order by event_at, message_id);

create or replace table plain_sessions as
with b as (
  select *, prev_at is null or date_diff('second', prev_at, event_at) > 1800 as is_start,
            next_at is null or date_diff('second', event_at, next_at) > 1800 as is_end
  from plain_event_gaps
  where prev_at is null or next_at is null or date_diff('second', prev_at, event_at) > 1800
     or date_diff('second', event_at, next_at) > 1800),
p as (
  select user_id, is_start, event_at as session_start, n_so_far - 1 as n_before,
         case when is_end then event_at else lead(event_at) over nb end as session_end,
         case when is_end then n_so_far else lead(n_so_far) over nb end as n_end
  from b window nb as (partition by user_id order by event_at, message_id))
select user_id, session_start, session_end, session_start::date as session_date,
       date_diff('second', session_start, session_end) / 60.0 as duration_minutes,
       n_end - n_before as event_count
from p where is_start;

create or replace table plain_daily as
with e as (
  select user_id, d as activity_date, count(*) as events,
         count(*) filter (where event_type = 'page') as page_views,
         count(*) filter (where event_type = 'track' and event_name in $core) as core_feature_events,
         sum(case when date_diff('second', prev_at, event_at) <= 1800
                  then date_diff('second', prev_at, event_at) / 60.0 else 0 end) as active_minutes
  from plain_event_gaps group by 1, 2),
s as (select user_id, session_date as activity_date, count(*) as sessions_started
      from plain_sessions group by 1, 2)
select e.*, coalesce(s.sessions_started, 0) as sessions_started
from e left join s using (user_id, activity_date);

create or replace table plain_features as
with bounds as (
  select user_id, min(activity_date) as first_date from plain_daily group by 1),
data_end as (select max(activity_date) as last_date from plain_daily),
grid as (
  select b.user_id, unnest(generate_series(b.first_date, d.last_date, interval 1 day))::date
         as snapshot_date
  from bounds b, data_end d),
dense as (
  select g.user_id, g.snapshot_date, (a.user_id is not null)::int as active,
         coalesce(a.events, 0) as events, coalesce(a.sessions_started, 0) as sessions,
         coalesce(a.active_minutes, 0) as active_minutes,
         coalesce(a.core_feature_events, 0) as core_feature_events
  from grid g left join plain_daily a
    on a.user_id = g.user_id and a.activity_date = g.snapshot_date)
select user_id, snapshot_date,
       sum(active) over w7 as active_days_7d, sum(active) over w28 as active_days_28d,
       sum(events) over w7 as events_7d, sum(events) over w28 as events_28d,
       sum(sessions) over w28 as sessions_28d,
       sum(active_minutes) over w28 / nullif(sum(sessions) over w28, 0) as avg_session_minutes_28d,
       sum(core_feature_events) over w28 as core_feature_events_28d,
       sum(events) over wall as events_lifetime,
       max(case when active = 1 then snapshot_date end) over wall as last_active_date
from dense
window w7 as (partition by user_id order by snapshot_date rows 6 preceding),
       w28 as (partition by user_id order by snapshot_date rows 27 preceding),
       wall as (partition by user_id order by snapshot_date rows unbounded preceding);
"""


def plain_script() -> str:
    """BASELINE_SQL with the tracking plan's core features filled in."""
    core = "(" + ", ".join(f"'{e}'" for e in tracking_plan.load().core_features) + ")"
    return BASELINE_SQL.replace("$core", core)
