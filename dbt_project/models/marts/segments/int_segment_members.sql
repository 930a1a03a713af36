{{ config(materialized='ephemeral') }}
-- One row per user per segment_date per segment tag (user_segments.segments unnested), with
-- the user's features that day and the observed outcomes after it (from ml_label_windows for
-- Mondays is not enough: segments are daily, so outcomes are computed here over daily data).
{%- set churn_days = var('churn_window_days') | int -%}
{%- set conversion_days = var('conversion_window_days') | int -%}
{%- set plan = var('tracking_plan') %}
with tags as (
    select user_id, segment_date, {{ unnest_array('segments') }} as segment
    from {{ source('segflow', 'user_segments') }}
),

data_end as (
    select max(activity_date) as data_end_date from {{ ref('int_user_activity_daily') }}
),

members as (
    select
        tags.user_id,
        tags.segment_date,
        tags.segment,
        f.avg_session_minutes_28d,
        f.onboarding_completion,
        f.is_paid,
        f.is_active_28d,
        f.plan,
        {{ dbt.dateadd('day', churn_days, 'tags.segment_date') }} <= data_end.data_end_date as churn_window_covered,
        {{ dbt.dateadd('day', conversion_days, 'tags.segment_date') }} <= data_end.data_end_date as conversion_window_covered
    from tags
    cross join data_end
    left join {{ ref('fct_user_features') }} as f
        on f.user_id = tags.user_id and f.snapshot_date = tags.segment_date
    where tags.segment is not null
),

future as (
    select
        m.user_id,
        m.segment_date,
        sum(case when a.activity_date <= {{ dbt.dateadd('day', churn_days, 'm.segment_date') }} then 1 else 0 end) as active_days_next,
        sum(case when a.activity_date <= {{ dbt.dateadd('day', churn_days, 'm.segment_date') }} then a.cancel_events else 0 end) as cancels_next,
        sum(case when a.activity_date <= {{ dbt.dateadd('day', conversion_days, 'm.segment_date') }} then a.upgrade_events else 0 end) as upgrades_next
    from (select distinct user_id, segment_date from members) as m
    inner join {{ ref('int_user_activity_daily') }} as a
        on a.user_id = m.user_id
       and a.activity_date > m.segment_date
       and a.activity_date <= {{ dbt.dateadd('day', [churn_days, conversion_days] | max, 'm.segment_date') }}
    group by m.user_id, m.segment_date
),

future_paid as (
    select m.user_id, m.segment_date, count(*) as paid_versions
    from (select distinct user_id, segment_date from members) as m
    inner join {{ ref('stg_crm__contact_snapshots') }} as c
        on c.user_id = m.user_id
       and c.plan in {{ sql_list(plan['paid_plans']) }}
       and c.valid_from_date > m.segment_date
       and c.valid_from_date <= {{ dbt.dateadd('day', conversion_days, 'm.segment_date') }}
    group by m.user_id, m.segment_date
),

scores as (
    select user_id, score_date, churn_probability, ltv_90d
    from {{ source('segflow', 'user_scores') }}
)

select
    members.*,
    scores.churn_probability,
    scores.ltv_90d,
    case when members.churn_window_covered and members.is_active_28d
         then coalesce(future.active_days_next, 0) = 0 or coalesce(future.cancels_next, 0) > 0 end as churned_next,
    case when members.conversion_window_covered and not members.is_paid
         then coalesce(future.upgrades_next, 0) > 0 or coalesce(future_paid.paid_versions, 0) > 0 end as converted_next
from members
left join future on future.user_id = members.user_id and future.segment_date = members.segment_date
left join future_paid on future_paid.user_id = members.user_id and future_paid.segment_date = members.segment_date
left join scores on scores.user_id = members.user_id and scores.score_date = members.segment_date
