{{ config(materialized='ephemeral') }}
-- Per user, the all-time totals of the days before the windows' grid (grid_start,
-- int_user_feature_regions): the running sums on the grid continue from them. Empty on a
-- full build (the grid starts at the user's first day).
{%- set milestones = var('tracking_plan')['milestones'] -%}
{%- set counters = var('milestone_counters') %}

with
regions as (
    select * from {{ ref('int_user_feature_regions') }}
),

revenue_events as (
    select * from {{ ref('int_user_revenue_events') }}
),

prior_activity as (
    select
        daily.user_id,
        max(case when daily.activity_events > 0 then daily.activity_date end)
            as last_active_date,
        min(case when daily.activity_events > 0 then daily.activity_date end)
            as first_active_date,
        sum(case when daily.activity_events > 0 then 1 else 0 end) as active_days,
        max(case when daily.cancel_events > 0 then daily.activity_date end) as last_cancel_date,
        {% for column, milestone in counters.items() -%}
        sum(daily.milestone_{{ milestone }}_events) as {{ column }},
        {% endfor -%}
        {% for m in milestones -%}
        min(case when daily.first_{{ m['name'] }} then daily.activity_date end)
            as first_date_{{ m['name'] }},
        {% endfor -%}
        sum(daily.support_tickets) as support_tickets
    from {{ ref('int_user_activity_daily') }} as daily
    inner join regions
        on daily.user_id = regions.user_id and daily.activity_date < regions.grid_start
    group by daily.user_id
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
    prior_activity.last_active_date,
    prior_activity.first_active_date,
    prior_activity.active_days,
    prior_activity.last_cancel_date,
    {% for column in counters -%}
    prior_activity.{{ column }},
    {% endfor -%}
    {% for m in milestones -%}
    prior_activity.first_date_{{ m['name'] }},
    {% endfor -%}
    prior_activity.support_tickets,
    prior_revenue.revenue,
    prior_revenue.purchases,
    prior_revenue.first_purchase_date,
    prior_revenue.last_purchase_date,
    prior_revenue.paid_through_date
from regions
left join prior_activity on regions.user_id = prior_activity.user_id
left join prior_revenue on regions.user_id = prior_revenue.user_id
where prior_activity.user_id is not null or prior_revenue.user_id is not null
