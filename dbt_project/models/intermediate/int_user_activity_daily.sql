-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- depends_on: {{ ref('int_sessions') }}
-- depends_on: {{ ref('stg_events__events') }}
-- One row per user per active day: events, sessions started, active minutes, usage counts
-- per core feature, support/billing events, events per onboarding milestone, and
-- `first_<milestone>`: true on the day the user reached that milestone for the first time.
-- Columns per feature / milestone come from vars.tracking_plan.
-- Incremental: days from each user's cut (see int_sessions) on are deleted and rebuilt.
{%- set plan = var('tracking_plan') -%}
{%- set timeout = var('session_timeout_minutes') | int -%}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    partition_by=date_partition_by('activity_date'),
    unique_key=['user_id', 'activity_date'],
    replace_where_floor={
        'column': 'activity_date', 'type': 'date',
        'expression': 'least(min(activity_date), ' ~ reprocess_from() ~ ')'
    },
    incremental_predicates=user_cut_predicates('activity_date', reprocess_from()),
    narrow_predicates=user_cut_predicates('activity_date', reprocess_from(), narrow=true),
    post_hook="{{ consumed_loads_hook() }}",
) }}
{#- Narrow (macros/consumed_loads.sql): only the users whose stitched events can have changed
    are rebuilt, from their own cut, as in int_sessions. -#}
{%- set new_partitions = raw_event_changes(this.identifier) if is_incremental() else none %}

with
{% if is_incremental() %}
{%- set floor_ts = reprocess_floor_ts(ref('int_sessions')) %}
stitched_cuts as ({{ stitched_cuts_cte() }}),
{% if new_partitions is not none %}
cuts as ({{ narrow_user_cuts(ref('int_sessions'), new_partitions) }}),
{% else %}
cuts as ({{ user_reprocess_cuts(ref('int_sessions')) }}),
{% endif %}
{% endif %}
{% if new_partitions is not none %}
{% endif %}

-- Each event with the gap to the user's previous event; gaps within the session timeout are
-- active time, credited to the day of the later event. So a day's active minutes only use
-- events up to that day (a session running past midnight adds its later minutes to the next
-- day), which keeps fct_user_features point-in-time. Events from the timeout before the
-- user's cut day are read only to know the first gaps.
events_with_gaps as (
    select
        e.stitched_user_id as user_id,
        e.event_date as activity_date,
        e.event_type,
        e.event_name,
        e.event_at,
        lag(e.event_at)
            over (partition by e.stitched_user_id order by e.event_at, e.message_id)
            as previous_event_at,
        {% if is_incremental() %}
        coalesce(cuts.cut_date, {{ reprocess_from() }}) as region_start_date
        {% else %}
        e.event_date as region_start_date
        {% endif %}
    from {{ ref('int_events_stitched') }} as e
    {% if is_incremental() %}
    {{ 'inner' if new_partitions is not none else 'left' }} join cuts on cuts.user_id = e.stitched_user_id
    where
        e.event_at >= {{ dbt.dateadd(
            'minute', -1 * timeout,
            'cast(coalesce(cuts.cut_date, ' ~ reprocess_from() ~ ') as ' ~ dbt.type_timestamp() ~ ')',
        ) }}
        -- the same bound as a literal: the scan skips the older history
        and e.event_at >= {{ dbt.dateadd('minute', -1 * timeout,
            'cast(cast(' ~ floor_ts ~ ' as date) as ' ~ dbt.type_timestamp() ~ ')') }}
    {% endif %}

),

events as (
    select
        *,
        case
            when
                previous_event_at is not null
                and {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
                <= {{ timeout * 60 }}
                then
                    {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
                    / cast(60 as {{ segflow_double() }})
            else 0.0
        end as active_gap_minutes
    from events_with_gaps
    where activity_date >= region_start_date
),

event_counts as (
    select
        user_id,
        activity_date,
        count(*) as events,
        -- what counts as activity / as a purchase: settings, macros/business_events.sql
        sum(case when {{ is_activity_event('event_type', 'event_name') }} then 1 else 0 end)
            as activity_events,
        sum(case when {{ is_purchase_event('event_type', 'event_name') }} then 1 else 0 end)
            as purchase_events,
        sum(active_gap_minutes) as active_minutes,
        sum(case when event_type = 'page' then 1 else 0 end) as page_views,
        sum(
            case
                when event_type = 'track' and event_name in {{ sql_list(plan['core_features']) }}
                    then 1
                else 0
            end
        ) as core_feature_events,
        {% for feature in plan['core_features'] -%}
        sum(
            case
                when event_type = 'track' and event_name = '{{ feature }}'
                    then 1
                else 0
            end
        ) as feature_{{ slug(feature) }}_events,
        {% endfor -%}
        {% for m in plan['milestones'] -%}
        sum(
            case
                when event_type = 'track' and event_name in {{ sql_list(m['events']) }}
                    then 1
                else 0
            end
        ) as milestone_{{ m['name'] }}_events,
        {% endfor -%}
        sum(
            case
                when event_type = 'track' and event_name in {{ sql_list(plan['support_events']) }}
                    then 1
                else 0
            end
        ) as support_tickets,
        sum(
            case
                when event_type = 'track' and event_name in {{ sql_list(plan['upgrade_events']) }}
                    then 1
                else 0
            end
        ) as upgrade_events,
        sum(
            case
                when event_type = 'track' and event_name in {{ sql_list(plan['cancel_events']) }}
                    then 1
                else 0
            end
        ) as cancel_events
    from events
    group by user_id, activity_date
),

session_counts as (
    select
        s.user_id,
        s.session_date as activity_date,
        count(*) as sessions_started
    from {{ ref('int_sessions') }} as s
    {% if is_incremental() %}
    {{ 'inner' if new_partitions is not none else 'left' }} join cuts on cuts.user_id = s.user_id
    where
        s.session_date >= coalesce(cuts.cut_date, {{ reprocess_from() }})
        and s.session_date >= cast({{ floor_ts }} as date)
    {% endif %}

    group by s.user_id, s.session_date
),

-- First day each milestone was reached: the stored days before the user's cut (unchanged by
-- this run) and the rebuilt days, whichever is earlier. (Written as union + min rather than a
-- left join with coalesce: DuckDB 2.0.1's statistics propagation folds the latter wrongly
-- when the stored side is provably empty.)
milestone_firsts as (
    select
        {% for m in plan['milestones'] -%}
        min(firsts_by_source.first_date_{{ m['name'] }}) as first_date_{{ m['name'] }},
        {% endfor -%}
        firsts_by_source.user_id
    from (
        -- union all matches columns by position: user_id last in both branches
        select
            {% for m in plan['milestones'] -%}
            min(case when milestone_{{ m['name'] }}_events > 0 then activity_date end)
                as first_date_{{ m['name'] }},
            {% endfor -%}
            user_id
        from event_counts
        group by user_id
        {% if is_incremental() %}
        union all
        select
            {% for m in plan['milestones'] -%}
            min(case when t.first_{{ m['name'] }} then t.activity_date end)
                as first_date_{{ m['name'] }},
            {% endfor -%}
            t.user_id
        from {{ this }} as t
        {{ 'inner' if new_partitions is not none else 'left' }} join cuts on cuts.user_id = t.user_id
        where
            t.activity_date < coalesce(cuts.cut_date, {{ reprocess_from() }})
            -- only a stored day with a first_ flag holds a first date (a few rows per user)
            and ({% for m in plan['milestones'] %}t.first_{{ m['name'] }}{{ ' or ' if not loop.last }}{% endfor %})
        group by t.user_id
        {% endif %}
    ) as firsts_by_source
    group by firsts_by_source.user_id
)

select
    event_counts.user_id,
    event_counts.activity_date,
    event_counts.events,
    event_counts.activity_events,
    event_counts.purchase_events,
    event_counts.page_views,
    coalesce(session_counts.sessions_started, 0) as sessions_started,
    event_counts.active_minutes,
    event_counts.core_feature_events,
    {% for feature in plan['core_features'] -%}
    event_counts.feature_{{ slug(feature) }}_events,
    {% endfor -%}
    event_counts.support_tickets,
    event_counts.upgrade_events,
    event_counts.cancel_events
    {%- for m in plan['milestones'] %},
    event_counts.milestone_{{ m['name'] }}_events
    {%- endfor %}
    {%- for m in plan['milestones'] %},
    coalesce(
        event_counts.activity_date = milestone_firsts.first_date_{{ m['name'] }}, false
    ) as first_{{ m['name'] }}{% endfor %}
from event_counts
inner join milestone_firsts on event_counts.user_id = milestone_firsts.user_id
left join session_counts
    on
        event_counts.user_id = session_counts.user_id
        and event_counts.activity_date = session_counts.activity_date
{% if not is_incremental() %}
-- stored in date order: a new day's scans skip the older row groups (macro date_ordered)
{{ date_ordered('event_counts.activity_date') }}
{% endif %}
