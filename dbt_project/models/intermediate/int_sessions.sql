-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- Sessions: a user's events split by inactivity. A gap longer than session_timeout_minutes
-- (30) starts a new session; a gap of exactly 30 minutes continues the session. Sessions are
-- per user, not per day: a session running past midnight stays one session (dated by its
-- start). session_id = hash(user_id, session_start).
-- Incremental: sessions starting at or after each user's cut (see macro user_reprocess_cuts:
-- min_date - late_arrival_days, earlier for users with an open session or newly stitched
-- history) are deleted and rebuilt from the events, so late events land in the right session.
{%- set timeout_seconds = var('session_timeout_minutes') | int * 60 -%}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    unique_key='session_id',
    incremental_predicates=[
        "session_start >= " ~ reprocess_from_ts()
        ~ " or exists (select 1 from (select user_id as cut_user_id, min(session_start) as cut_at"
        ~ " from DBT_INTERNAL_SOURCE group by 1) as cuts"
        ~ " where cuts.cut_user_id = user_id and session_start >= cuts.cut_at)"
    ],
) }}

with
{% if is_incremental() %}
stitched_cuts as ({{ stitched_cuts_cte() }}),
cuts as ({{ user_reprocess_cuts(this) }}),
{% endif %}

events as (
    select e.stitched_user_id as user_id, e.message_id, e.event_at, e.event_type, e.event_name
    from {{ ref('int_events_stitched') }} as e
    {% if is_incremental() %}
    left join cuts on cuts.user_id = e.stitched_user_id
    where e.event_at >= coalesce(cuts.cut_at, {{ reprocess_from_ts() }})
    {% endif %}
),

gaps as (
    select *,
        lag(event_at) over (partition by user_id order by event_at, message_id) as previous_event_at
    from events
),

starts as (
    select *,
        case
            when previous_event_at is null then 1
            when {{ dbt.datediff('previous_event_at', 'event_at', 'second') }} > {{ timeout_seconds }} then 1
            else 0
        end as is_session_start
    from gaps
),

numbered as (
    select *,
        sum(is_session_start) over (
            partition by user_id order by event_at, message_id
            rows between unbounded preceding and current row
        ) as session_number_in_run
    from starts
),

sessions as (
    select
        user_id,
        min(event_at) as session_start,
        max(event_at) as session_end,
        count(*) as event_count,
        sum(case when event_type = 'page' then 1 else 0 end) as page_views,
        sum(case when event_type = 'track' and event_name in {{ sql_list(var('tracking_plan')['core_features']) }}
                 then 1 else 0 end) as core_feature_events
    from numbered
    group by user_id, session_number_in_run
)

select
    {{ dbt.hash(dbt.concat(["user_id", "'|'", dbt.cast("session_start", api.Column.translate_type("string"))])) }} as session_id,
    user_id,
    session_start,
    session_end,
    cast(session_start as date) as session_date,
    {{ dbt.datediff('session_start', 'session_end', 'second') }} / 60.0 as duration_minutes,
    event_count,
    page_views,
    core_feature_events
from sessions
