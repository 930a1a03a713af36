{{ config(materialized='ephemeral') }}
-- Per user and rebuilt snapshot day (from region_start, int_user_feature_regions): rolling
-- 7/28-day sums, the 7 days before the last 7, and running all-time values over the grid
-- (int_user_feature_prior_totals holds what came before it).
-- The grid is dense over the rebuilt days and sparse over the windows' look-back before them
-- (only days with activity or revenue): the frames are RANGE frames over day_number, so a
-- missing day counts as zero and a roll-forward reads feature_lookback_days of stored
-- activity rather than every user's every day.
{%- set plan = var('tracking_plan') -%}
{%- set milestones = plan['milestones'] -%}
{%- set counters = var('milestone_counters') -%}
{%- set daily_rel = ref('int_user_activity_daily') -%}
{%- set contacts_rel = ref('stg_crm__contact_snapshots') %}

with
regions as (
    select * from {{ ref('int_user_feature_regions') }}
),

daily as (
    select * from {{ daily_rel }}
),

revenue_daily as (
    select
        user_id,
        paid_date,
        {{ exact_sum('amount_usd') }} as revenue,
        sum(case when is_purchase then 1 else 0 end) as purchases,
        max(period_end_date) as paid_through_date
    from {{ ref('int_user_revenue_events') }}
    group by user_id, paid_date
),

calendar as (
    {{ calendar_between(
        "(select min(first_date) from (select min(activity_date) as first_date from " ~ daily_rel
        ~ " union all select min(signup_date) from " ~ contacts_rel
        ~ " union all select min(valid_from_date) from " ~ contacts_rel ~ ") as firsts)",
        "(select max(activity_date) from " ~ daily_rel ~ ")") }}
),

grid as (
    select
        regions.user_id,
        calendar.calendar_date as snapshot_date,
        regions.region_start
    from regions
    inner join calendar
        on
            regions.dense_start <= calendar.calendar_date
            and calendar.calendar_date <= (
                select max(activity_date) as data_end_date from {{ daily_rel }}
            )
    union all
    select
        lookback.user_id,
        lookback.snapshot_date,
        regions.region_start
    from (
        select
            user_id,
            activity_date as snapshot_date
        from daily
        union
        select
            user_id,
            paid_date as snapshot_date
        from revenue_daily
    ) as lookback
    inner join regions
        on
            lookback.user_id = regions.user_id
            and lookback.snapshot_date >= regions.grid_start
            and lookback.snapshot_date < regions.dense_start
),

dense as (
    select
        grid.user_id,
        grid.snapshot_date,
        grid.region_start,
        {{ dbt.datediff("cast('1970-01-01' as date)", 'grid.snapshot_date', 'day') }}
            as day_number,
        case when coalesce(daily.activity_events, 0) > 0 then 1 else 0 end as active,
        coalesce(daily.events, 0) as events,
        coalesce(daily.sessions_started, 0) as sessions,
        coalesce(daily.active_minutes, 0.0) as active_minutes,
        coalesce(daily.core_feature_events, 0) as core_feature_events,
        {% for feature in plan['core_features'] -%}
        coalesce(daily.feature_{{ slug(feature) }}_events, 0) as feature_{{ slug(feature) }}_events,
        {% endfor -%}
        coalesce(daily.support_tickets, 0) as support_tickets,
        coalesce(daily.cancel_events, 0) as cancel_events,
        coalesce(revenue_daily.purchases, 0) as purchases,
        revenue_daily.paid_through_date,
        {% for column, milestone in counters.items() -%}
        coalesce(daily.milestone_{{ milestone }}_events, 0) as {{ column }},
        {% endfor -%}
        {% for m in milestones -%}
        case when daily.first_{{ m['name'] }} then 1 else 0 end as first_{{ m['name'] }},
        {% endfor -%}
        coalesce(revenue_daily.revenue, 0.0) as revenue
    from grid
    left join daily
        on grid.user_id = daily.user_id and grid.snapshot_date = daily.activity_date
    left join revenue_daily
        on grid.user_id = revenue_daily.user_id and grid.snapshot_date = revenue_daily.paid_date
),

rolled as (
    select
        user_id,
        snapshot_date,
        region_start,
        sum(active) {{ last_n_days(7) }} as active_days_7d,
        sum(active) {{ last_n_days(28) }} as active_days_28d,
        sum(events) {{ last_n_days(7) }} as events_7d,
        sum(events) {{ last_n_days(28) }} as events_28d,
        sum(events) {{ last_n_days(7, 7) }} as events_prev_7d,
        sum(sessions) {{ last_n_days(7) }} as sessions_7d,
        sum(sessions) {{ last_n_days(28) }} as sessions_28d,
        {{ exact_sum('active_minutes') }} {{ last_n_days(28) }} as active_minutes_28d,
        sum(core_feature_events) {{ last_n_days(28) }} as feature_depth_28d,
        {% for feature in plan['core_features'] -%}
        sum(feature_{{ slug(feature) }}_events)
            {{ last_n_days(28) }}
            as feature_{{ slug(feature) }}_28d,
        sum(feature_{{ slug(feature) }}_events)
            {{ last_n_days(7) }}
            as feature_{{ slug(feature) }}_7d,
        sum(feature_{{ slug(feature) }}_events)
            {{ last_n_days(7, 7) }}
            as feature_{{ slug(feature) }}_prev_7d,
        {% endfor -%}
        sum(active) {{ running() }} as active_days_running,
        min(case when active = 1 then snapshot_date end) {{ running() }} as first_active_date,
        max(case when cancel_events > 0 then snapshot_date end) {{ running() }} as last_cancel_date,
        sum(purchases) {{ running() }} as purchases_running,
        min(case when purchases > 0 then snapshot_date end) {{ running() }} as first_purchase_date,
        max(case when purchases > 0 then snapshot_date end) {{ running() }} as last_purchase_date,
        max(paid_through_date) {{ running() }} as paid_through_date,
        sum(support_tickets) {{ last_n_days(28) }} as support_tickets_28d,
        sum(support_tickets) {{ running() }} as support_tickets_running,
        {% for column in counters -%}
        sum({{ column }}) {{ running() }} as {{ column }}_running,
        {% endfor -%}
        {% for m in milestones -%}
        min(case when first_{{ m['name'] }} = 1 then snapshot_date end)
            {{ running() }}
            as first_date_{{ m['name'] }},
        {% endfor -%}
        max(case when active = 1 then snapshot_date end) {{ running() }} as last_active_date,
        {{ exact_sum('revenue') }} {{ running() }} as revenue_running
    from dense
)

select * from rolled
where snapshot_date >= region_start
