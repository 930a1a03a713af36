{{ config(materialized='ephemeral') }}
-- Paid invoices (revenue, MRR) and purchases, one row each, dated by the day they were paid:
-- which invoices / track calls count as a purchase is a setting (macros/business_events.sql);
-- purchase events carry no amount.
select
    user_id,
    paid_date,
    amount_usd,
    monthly_amount_usd,
    period_start_date,
    period_end_date,
    {{ invoices_are_purchases() }} as is_purchase
from {{ ref('stg_billing__invoices') }}
where is_revenue
union all
select
    user_id,
    activity_date as paid_date,
    0.0 as amount_usd,
    cast(null as {{ segflow_double() }}) as monthly_amount_usd,
    cast(null as date) as period_start_date,
    cast(null as date) as period_end_date,
    true as is_purchase
from {{ ref('int_user_activity_daily') }}
where purchase_events > 0
