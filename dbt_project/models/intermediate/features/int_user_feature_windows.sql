-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- depends_on: {{ ref('int_sessions') }}
{{ config(materialized='ephemeral') }}
-- Per user and rebuilt snapshot day (from region_start, int_user_feature_regions): rolling
-- 7/28-day sums, the 7 days before the last 7, and running values from grid_start on
-- (int_user_feature_prior_totals holds what came before it); the list: feature_rollups().
-- A full build (or a backfill of an older window): windows over a grid dense on the rebuilt
-- days and sparse (days with activity or revenue) on the look-back before them; RANGE frames
-- over day_number, so a missing day counts as zero. A new day (features_roll_by_pairs): no
-- windows; each rebuilt day is paired with the user's days with data since grid_start and
-- the rollups are conditional aggregates, so it reads feature_lookback_days of stored
-- activity per user, not every day of every user.
{%- set plan = var('tracking_plan') -%}
{%- set milestones = plan['milestones'] -%}
{%- set counters = var('milestone_counters') -%}
{%- set daily_rel = ref('int_user_activity_daily') -%}
{%- set contacts_rel = ref('stg_crm__contact_snapshots') -%}
{%- set by_pairs = features_roll_by_pairs() %}

with
regions as (
    select * from {{ ref('int_user_feature_regions') }}
),

daily as (
    select * from {{ daily_rel }}
    {% if by_pairs -%}
    -- no grid starts before the earliest cut's look-back: the scan skips the older days
    where activity_date >= {{ dbt.dateadd('day', -1 * (feature_lookback_days() | int),
        'cast(' ~ reprocess_floor_ts(ref('int_sessions')) ~ ' as date)') }}
    {%- endif %}
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
        "(" ~ data_end_select(daily_rel) ~ ")") }}
),

region_days as (
    select
        regions.user_id,
        calendar.calendar_date as snapshot_date,
        regions.region_start
    from regions
    inner join calendar
        on
            regions.dense_start <= calendar.calendar_date
            and calendar.calendar_date <= ({{ data_end_select(daily_rel) }})
),

-- Days with data from grid_start: before the rebuilt days (windows), or all (pairs).
data_days as (
    select
        data_keys.user_id,
        data_keys.snapshot_date,
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
    ) as data_keys
    inner join regions
        on
            data_keys.user_id = regions.user_id
            and data_keys.snapshot_date >= regions.grid_start
            {% if not by_pairs -%}
            and data_keys.snapshot_date < regions.dense_start
            {%- endif %}
),

grid as (
    select * from data_days
    {% if not by_pairs -%}
    union all
    select * from region_days
    {%- endif %}
),

dense as (
    select
        grid.user_id,
        grid.snapshot_date,
        grid.region_start,
        {{ day_number('grid.snapshot_date') }} as day_number,
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

{% if by_pairs %}

pairs as (
    select
        targets.user_id as target_user_id,
        targets.snapshot_date as target_date,
        targets.region_start as target_region_start,
        {{ day_number('targets.snapshot_date') }} as target_day_number,
        dense.*
    from region_days as targets
    left join dense
        on
            targets.user_id = dense.user_id
            and dense.snapshot_date <= targets.snapshot_date
),

rolled_pairs as (
    select
        target_user_id,
        target_date,
        target_region_start,
        {% for spec in feature_rollups() -%}
        {{ rollup_over_pairs(spec) }} as {{ spec[0] }}{{ ',' if not loop.last }}
        {% endfor -%}
    from pairs
    group by target_user_id, target_date, target_region_start
),

rolled as (
    select
        {% for spec in feature_rollups() -%}
        {{ spec[0] }},
        {% endfor -%}
        target_user_id as user_id,
        target_date as snapshot_date,
        target_region_start as region_start
    from rolled_pairs
)
{% else %}

rolled as (
    select
        {% for spec in feature_rollups() -%}
        {{ rollup_over_window(spec) }} as {{ spec[0] }},
        {% endfor -%}
        user_id,
        snapshot_date,
        region_start
    from dense
)
{% endif %}

select * from rolled
where snapshot_date >= region_start
