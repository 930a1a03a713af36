-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_sessions') }}
{{ config(materialized='ephemeral') }}
-- Per user, the all-time totals of the days before the windows' grid (grid_start,
-- int_user_feature_regions): the running sums on the grid continue from them. The activity
-- before feature_history_start() comes summed from int_user_feature_history; the days from it
-- to the user's grid_start are added here (a few days of the date-ordered daily table). Empty
-- on a full build (the grid starts at the user's first day).
{%- set incremental = features_incremental() -%}
{%- set lookback = feature_lookback_days() | int -%}
{#- a full build reads no day before the grid: an empty range -#}
{%- set history_start = feature_history_start() if incremental else "cast('1970-01-01' as date)" -%}
{%- set latest_grid = "cast('1970-01-01' as date)" -%}
{%- if incremental -%}
    {#- looked up once: a literal bound lets the scan skip the later row groups -#}
    {%- set latest = run_query('select cast(' ~ dbt.dateadd('day', -lookback,
        'greatest(' ~ reprocess_from() ~ ', ' ~ features_next_day() ~ ')') ~ ' as date)'
    ).columns[0].values()[0] -%}
    {%- set latest_grid = "cast('" ~ latest ~ "' as date)" -%}
{%- endif %}

with
regions as (
    select * from {{ ref('int_user_feature_regions') }}
),

revenue_events as (
    select * from {{ ref('int_user_revenue_events') }}
),

history as (
    select * from {{ ref('int_user_feature_history') }}
),

-- the days from feature_history_start() to the user's grid_start; no grid starts later than
-- lookback days before the latest region start (reprocess_from or the day after the stored ones)
recent_days as (
    select daily.*
    from {{ ref('int_user_activity_daily') }} as daily
    inner join regions
        on daily.user_id = regions.user_id and daily.activity_date < regions.grid_start
    where
        daily.activity_date >= {{ history_start }}
        and daily.activity_date < {{ latest_grid }}
),

recent as (
    select
        {% for name, aggregate, _ in prior_activity_totals() -%}
        {{ aggregate }} as {{ name }},
        {% endfor -%}
        user_id
    from recent_days
    group by user_id
),

prior_activity as (
    select
        {% for name, _, combine in prior_activity_totals() -%}
        {{ combine }}({{ name }}) as {{ name }},
        {% endfor -%}
        user_id
    from (
        select
            {% for name, _, _ in prior_activity_totals() -%}
            {{ name }},
            {% endfor -%}
            user_id
        from history
        union all
        select * from recent
    ) as parts
    group by user_id
),

prior_revenue as (
    select
        revenue_events.user_id,
        {{ exact_sum('revenue_events.amount_usd') }} as revenue,
        sum(case when revenue_events.is_purchase then 1 else 0 end) as purchases,
        min(case when revenue_events.is_purchase then revenue_events.paid_date end)
            as first_purchase_date,
        max(case when revenue_events.is_purchase then revenue_events.paid_date end)
            as last_purchase_date,
        max(revenue_events.period_end_date) as paid_through_date
    from revenue_events
    inner join regions
        on
            revenue_events.user_id = regions.user_id
            and revenue_events.paid_date < regions.grid_start
    group by revenue_events.user_id
)

select
    regions.user_id,
    {% for name, _, _ in prior_activity_totals() -%}
    prior_activity.{{ name }},
    {% endfor -%}
    prior_revenue.revenue,
    prior_revenue.purchases,
    prior_revenue.first_purchase_date,
    prior_revenue.last_purchase_date,
    prior_revenue.paid_through_date
from regions
left join prior_activity on regions.user_id = prior_activity.user_id
left join prior_revenue on regions.user_id = prior_revenue.user_id
where prior_activity.user_id is not null or prior_revenue.user_id is not null
