{{ config(materialized='ephemeral') }}
-- Per user and weekly snapshot date (Monday, via date_trunc('week')), the outcomes strictly
-- after the snapshot:
--   churned_next_window: the churn outcome of vars.churn_definition (macro churn_outcome):
--     inactivity: no activity on any day in (S, S + churn_horizon_days];
--     cancellation: the customer enters the cancelled state (fct_user_features.is_churned)
--     on some day in (S, S + churn_horizon_days];
--   converted_next_window: an upgrade event, a paid-plan CRM version or a paid invoice in
--     (S, S + conversion_window_days];
--   revenue_next_window: revenue in (S, S + ltv_horizon_days];
-- plus whether each window is covered by the data (S + window <= last day with data).
-- Every customer appears (churned ones too); the training marts pick their populations.
{%- set horizon_days = setting('churn_horizon_days') | int -%}
{%- set conversion_days = setting('conversion_window_days') | int -%}
{%- set ltv_days = setting('ltv_horizon_days') | int -%}
{%- set plan = var('tracking_plan') %}
with daily_state as (
    select
        *,
        max(case when is_churned then 1 else 0 end) over (
            partition by user_id order by snapshot_date
            rows between 1 following and {{ horizon_days }} following
        ) as churns_within_horizon,
        max(active_days_total) over (
            partition by user_id order by snapshot_date
            rows between 1 following and {{ horizon_days }} following
        ) as active_days_total_at_horizon
    from {{ ref('fct_user_features') }}
),

snapshots as (
    select *
    from daily_state
    where snapshot_date = cast({{ dbt.date_trunc('week', 'snapshot_date') }} as date)
),

data_end as (
    {{ data_end_select(ref('int_user_activity_daily')) }}
),

activity as (
    select
        user_id,
        activity_date,
        upgrade_events
    from {{ ref('int_user_activity_daily') }}
    where upgrade_events > 0
),

paid_contacts as (
    select
        user_id,
        valid_from_date
    from {{ ref('stg_crm__contact_snapshots') }}
    where plan in {{ sql_list(plan['paid_plans']) }}
),

revenue as (
    select
        user_id,
        paid_date,
        amount_usd
    from {{ ref('stg_billing__invoices') }}
    where is_revenue
),

future_upgrades as (
    {{ forward_window(
        'snapshots', 'snapshot_date', 'activity', 'activity_date', conversion_days,
        ['sum(e.upgrade_events) as upgrades_next_conversion'],
    ) }}
),

future_paid_plan as (
    {{ forward_window(
        'snapshots', 'snapshot_date', 'paid_contacts', 'valid_from_date', conversion_days,
        ['count(*) as paid_versions'],
    ) }}
),

future_revenue as (
    {{ forward_window(
        'snapshots', 'snapshot_date', 'revenue', 'paid_date', [ltv_days, conversion_days] | max,
        [
            exact_sum(
                "case when e.paid_date <= " ~ dbt.dateadd('day', ltv_days, 'm.snapshot_date')
                ~ " then e.amount_usd else 0 end"
            ) ~ ' as revenue_next_window',
            "sum(case when e.paid_date <= "
            ~ dbt.dateadd('day', conversion_days, 'm.snapshot_date')
            ~ " then 1 else 0 end) as invoices_next_conversion",
        ],
    ) }}
)

select
    -- fct_user_features' columns in its order (what daily_state's * read), then the horizon's
    {{ feature_columns("s") }},
    s.churns_within_horizon,
    s.active_days_total_at_horizon,
    {{ dbt.dateadd('day', horizon_days, 's.snapshot_date') }}
    <= d.data_end_date as churn_window_covered,
    {{ dbt.dateadd('day', conversion_days, 's.snapshot_date') }}
    <= d.data_end_date as conversion_window_covered,
    {{ dbt.dateadd('day', ltv_days, 's.snapshot_date') }} <= d.data_end_date as ltv_window_covered,
    coalesce(fr.revenue_next_window, 0.0) as revenue_next_window,
    {{ churn_outcome(
        's.churns_within_horizon', 's.active_days_total', 's.active_days_total_at_horizon',
    ) }} as churned_next_window,
    coalesce(fu.upgrades_next_conversion, 0) > 0 or coalesce(fp.paid_versions, 0) > 0
    or coalesce(fr.invoices_next_conversion, 0) > 0 as converted_next_window
from snapshots as s
cross join data_end as d
left join future_upgrades as fu on s.user_id = fu.user_id and s.snapshot_date = fu.snapshot_date
left join future_paid_plan as fp on s.user_id = fp.user_id and s.snapshot_date = fp.snapshot_date
left join future_revenue as fr on s.user_id = fr.user_id and s.snapshot_date = fr.snapshot_date
