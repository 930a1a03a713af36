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
    where activity_date >= {{ feature_history_start() }}
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

{% if by_pairs -%}
-- The user's days with data from grid_start (activity, revenue or both), one pass: a day
-- without a row counts as zero in the pairs' sums.
dense as (
    select
        regions.user_id,
        coalesce(daily.activity_date, revenue_daily.paid_date) as snapshot_date,
        regions.region_start,
        {{ day_number('coalesce(daily.activity_date, revenue_daily.paid_date)') }} as day_number,
        {{ feature_day_values() }}
    from daily
    full outer join revenue_daily
        on daily.user_id = revenue_daily.user_id and daily.activity_date = revenue_daily.paid_date
    inner join regions
        on
            coalesce(daily.user_id, revenue_daily.user_id) = regions.user_id
            and coalesce(daily.activity_date, revenue_daily.paid_date) >= regions.grid_start
),
{%- else -%}
-- Days with data from grid_start before the rebuilt days.
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
            and data_keys.snapshot_date < regions.dense_start
),

grid as (
    select * from data_days
    union all
    select * from region_days
),

dense as (
    select
        grid.user_id,
        grid.snapshot_date,
        grid.region_start,
        {{ day_number('grid.snapshot_date') }} as day_number,
        {{ feature_day_values() }}
    from grid
    left join daily
        on grid.user_id = daily.user_id and grid.snapshot_date = daily.activity_date
    left join revenue_daily
        on grid.user_id = revenue_daily.user_id and grid.snapshot_date = revenue_daily.paid_date
),
{%- endif %}

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
