-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- depends_on: {{ ref('stg_events__events') }}
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
    replace_where_floor={
        'column': 'session_start', 'type': dbt.type_timestamp(),
        'expression': 'least(min(session_start), ' ~ reprocess_from_ts() ~ ')'
    },
    incremental_predicates=user_cut_predicates('session_start', reprocess_from_ts()),
    narrow_predicates=user_cut_predicates('session_start', reprocess_from_ts(), narrow=true),
    post_hook="{{ consumed_loads_hook() }}",
) }}
{#- Narrow (macros/consumed_loads.sql): only the users whose stitched events can have changed
    are rebuilt, from their own cut (macro narrow_user_cuts); every other session would come
    out the same from the same events. -#}
{%- set new_partitions = raw_event_changes(this.identifier) if is_incremental() else none %}

with
{% if is_incremental() %}
stitched_cuts as ({{ stitched_cuts_cte() }}),
{% if new_partitions is not none %}
cuts as ({{ narrow_user_cuts(this, new_partitions) }}),
{% else %}
cuts as ({{ user_reprocess_cuts(this) }}),
{% endif %}
{% endif %}
{% if new_partitions is not none %}
{% endif %}

events as (
    select
        e.stitched_user_id as user_id,
        e.message_id,
        e.event_at,
        e.event_type,
        e.event_name
    from {{ ref('int_events_stitched') }} as e
    {% if is_incremental() %}
    {{ 'inner' if new_partitions is not none else 'left' }} join cuts on cuts.user_id = e.stitched_user_id
    where
        e.event_at >= coalesce(cuts.cut_at, {{ reprocess_from_ts() }})
        -- the same bound as a literal: the scan skips the older history
        and e.event_at >= {{ reprocess_floor_ts(this) }}
    {% endif %}

),

-- One sort: a single window pass (one partition/order) gives each event its neighbours and
-- running counts; only session boundaries (first / last event of a session) go on, and each
-- session is read off its first and last event.
ordered as (
    select
        user_id,
        message_id,
        event_at,
        lag(event_at) over user_events as previous_event_at,
        lead(event_at) over user_events as next_event_at,
        count(*) over user_events_so_far as events_so_far,
        sum(case when event_type = 'page' then 1 else 0 end)
            over user_events_so_far as page_views_so_far,
        sum(case
            when
                event_type = 'track'
                and event_name in {{ sql_list(var('tracking_plan')['core_features']) }}
                then 1
            else 0
        end)
            over user_events_so_far as core_feature_events_so_far,
        case when event_type = 'page' then 1 else 0 end as is_page,
        case
            when
                event_type = 'track'
                and event_name in {{ sql_list(var('tracking_plan')['core_features']) }}
                then 1
            else 0
        end as is_core
    from events
    window
        user_events as (partition by user_id order by event_at, message_id),
        user_events_so_far as (
            partition by user_id order by event_at, message_id
            rows between unbounded preceding and current row
        )
),

boundaries as (
    select
        *,
        previous_event_at is null
        or {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
        > {{ timeout_seconds }} as is_start,
        next_event_at is null
        or {{ dbt.datediff('event_at', 'next_event_at', 'second') }}
        > {{ timeout_seconds }} as is_end
    from ordered
    where
        previous_event_at is null
        or next_event_at is null
        or
        {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
        > {{ timeout_seconds }}
        or
        {{ dbt.datediff('event_at', 'next_event_at', 'second') }}
        > {{ timeout_seconds }}
),

-- After a session's first event the next boundary is its last event (or it is both).
paired as (
    select
        user_id,
        is_start,
        event_at as session_start,
        events_so_far - 1 as events_before,
        page_views_so_far - is_page as page_views_before,
        core_feature_events_so_far - is_core as core_feature_events_before,
        case when is_end then event_at else lead(event_at) over next_boundary end as session_end,
        case when is_end then events_so_far else lead(events_so_far) over next_boundary end
            as events_through_end,
        case
            when is_end then page_views_so_far else lead(page_views_so_far) over next_boundary
        end as page_views_through_end,
        case
            when is_end then core_feature_events_so_far else
                lead(core_feature_events_so_far) over next_boundary
        end
            as core_feature_events_through_end
    from boundaries
    window next_boundary as (partition by user_id order by event_at, message_id)
),

sessions as (
    select
        user_id,
        session_start,
        session_end,
        events_through_end - events_before as event_count,
        page_views_through_end - page_views_before as page_views,
        core_feature_events_through_end - core_feature_events_before as core_feature_events
    from paired
    where is_start
)

select
    {{ dbt.hash(dbt.concat([
        "user_id", "'|'", dbt.cast("session_start", api.Column.translate_type("string")),
    ])) }} as session_id,
    user_id,
    session_start,
    session_end,
    cast(session_start as date) as session_date,
    {{ dbt.datediff('session_start', 'session_end', 'second') }}
    / cast(60 as {{ segflow_double() }}) as duration_minutes,
    event_count,
    page_views,
    core_feature_events
from sessions
{% if not is_incremental() %}
-- stored in date order: a new day's scans skip the older row groups (macro date_ordered)
{{ date_ordered('session_start') }}
{% endif %}
