{{ config(materialized='ephemeral') }}
-- fct_user_features before its custom attributes and derived columns: per user and rebuilt
-- snapshot day, the windows (int_user_feature_windows) on the CRM version valid that day
-- (rows from signup on), all-time values = the totals before the grid
-- (int_user_feature_prior_totals) + the running values on it, and the day's MRR.
{%- set plan = var('tracking_plan') -%}
{%- set milestones = plan['milestones'] -%}
{%- set counters = var('milestone_counters') -%}
{%- set value_milestone = var('value_milestone', milestones[-1]['name']) %}

with
windows as (
    select * from {{ ref('int_user_feature_windows') }}
),

prior_totals as (
    select * from {{ ref('int_user_feature_prior_totals') }}
),

contact_versions as (
    select * from {{ ref('stg_crm__contact_snapshots') }}
),

revenue_events as (
    select * from {{ ref('int_user_revenue_events') }}
),

snapshots as (
    select
        windows.*,
        contact_versions.signup_date,
        contact_versions.plan,
        contact_versions.industry,
        contact_versions.company_size,
        contact_versions.country,
        contact_versions.role,
        contact_versions.acquisition_channel
    from windows
    inner join contact_versions
        on
            windows.user_id = contact_versions.user_id
            and windows.snapshot_date >= contact_versions.valid_from_date
            and (
                contact_versions.valid_to_date is null
                or windows.snapshot_date < contact_versions.valid_to_date
            )
    where
        windows.snapshot_date >= windows.region_start
        and windows.snapshot_date >= contact_versions.signup_date
),

mrr as (
    select
        snapshots.user_id,
        snapshots.snapshot_date,
        {{ exact_sum('revenue_events.monthly_amount_usd') }} as mrr
    from snapshots
    inner join revenue_events
        on
            snapshots.user_id = revenue_events.user_id
            and snapshots.snapshot_date >= revenue_events.paid_date
            and snapshots.snapshot_date >= revenue_events.period_start_date
            and snapshots.snapshot_date < revenue_events.period_end_date

    group by snapshots.user_id, snapshots.snapshot_date
),

features as (
    select
        snapshots.user_id,
        snapshots.snapshot_date,
        snapshots.signup_date,
        cast(
            {{ dbt.datediff('snapshots.signup_date', 'snapshots.snapshot_date', 'day') }}
            as {{ dbt.type_int() }}
        ) as days_since_signup,
        cast(coalesce(
            {{ dbt.datediff(
                'coalesce(snapshots.last_active_date, prior_totals.last_active_date)',
                'snapshots.snapshot_date', 'day',
            ) }},
            {{ dbt.datediff('snapshots.signup_date', 'snapshots.snapshot_date', 'day') }}
        ) as {{ dbt.type_int() }}) as days_since_last_active,
        coalesce(snapshots.last_active_date, prior_totals.last_active_date) as last_active_date,
        coalesce(prior_totals.first_active_date, snapshots.first_active_date)
            as first_active_date,
        cast(
            coalesce(prior_totals.active_days, 0) + snapshots.active_days_running
            as {{ dbt.type_int() }}
        ) as active_days_total,
        cast(
            coalesce(prior_totals.purchases, 0) + snapshots.purchases_running
            as {{ dbt.type_int() }}
        ) as purchases_total,
        coalesce(prior_totals.first_purchase_date, snapshots.first_purchase_date)
            as first_purchase_date,
        coalesce(snapshots.last_purchase_date, prior_totals.last_purchase_date)
            as last_purchase_date,
        greatest(
            coalesce(snapshots.paid_through_date, prior_totals.paid_through_date),
            coalesce(prior_totals.paid_through_date, snapshots.paid_through_date)
        ) as paid_through_date,
        greatest(
            coalesce(snapshots.last_cancel_date, prior_totals.last_cancel_date),
            coalesce(prior_totals.last_cancel_date, snapshots.last_cancel_date)
        ) as last_cancel_date,
        {% for feature in plan['core_features'] -%}
        cast(snapshots.feature_{{ slug(feature) }}_7d as {{ dbt.type_int() }})
            as evt_{{ slug(feature) }}_7d,
        cast(snapshots.feature_{{ slug(feature) }}_28d as {{ dbt.type_int() }})
            as evt_{{ slug(feature) }}_28d,
        cast(
            snapshots.feature_{{ slug(feature) }}_7d
            - coalesce(snapshots.feature_{{ slug(feature) }}_prev_7d, 0)
            as {{ dbt.type_int() }}
        ) as evt_{{ slug(feature) }}_change_7d,
        cast(
            case
                when snapshots.events_28d > 0
                    then
                        cast(snapshots.feature_{{ slug(feature) }}_28d as {{ segflow_double() }})
                        / snapshots.events_28d
                else 0.0
            end as {{ segflow_double() }}
        ) as evt_{{ slug(feature) }}_share_28d,
        {% endfor -%}

        cast(snapshots.active_days_7d as {{ dbt.type_int() }}) as active_days_7d,
        cast(snapshots.active_days_28d as {{ dbt.type_int() }}) as active_days_28d,
        cast(snapshots.events_7d as {{ dbt.type_int() }}) as events_7d,
        cast(snapshots.events_28d as {{ dbt.type_int() }}) as events_28d,
        cast(snapshots.sessions_7d as {{ dbt.type_int() }}) as sessions_7d,
        cast(snapshots.sessions_28d as {{ dbt.type_int() }}) as sessions_28d,
        cast(
            case
                when snapshots.sessions_28d > 0
                    then snapshots.active_minutes_28d / snapshots.sessions_28d
                else 0.0
            end as {{ segflow_double() }}
        ) as avg_session_minutes_28d,
        cast(
            0
            {% for feature in plan['core_features'] -%}
            + case when snapshots.feature_{{ slug(feature) }}_28d > 0 then 1 else 0 end
            {% endfor -%}
            as {{ dbt.type_int() }}
        ) as feature_breadth_28d,
        cast(snapshots.feature_depth_28d as {{ dbt.type_int() }}) as feature_depth_28d,
        {% for m in milestones -%}
        coalesce(
            prior_totals.first_date_{{ m['name'] }}, snapshots.first_date_{{ m['name'] }}
        ) is not null as reached_{{ m['name'] }},
        {% endfor -%}
        cast(
            {{ dbt.datediff(
                'snapshots.signup_date',
                'coalesce(prior_totals.first_date_' ~ value_milestone
                ~ ', snapshots.first_date_' ~ value_milestone ~ ')',
                'day',
            ) }}
            as {{ dbt.type_int() }}
        ) as days_to_first_value_raw,
        cast(
            coalesce(prior_totals.support_tickets, 0) + snapshots.support_tickets_running
            as {{ dbt.type_int() }}
        ) as support_tickets_total,
        cast(snapshots.support_tickets_28d as {{ dbt.type_int() }}) as support_tickets_28d,
        {% for column in counters -%}
        cast(
            coalesce(prior_totals.{{ column }}, 0) + snapshots.{{ column }}_running
            as {{ dbt.type_int() }}
        ) as {{ column }},
        {% endfor -%}
        cast(coalesce(snapshots.events_prev_7d, 0) as {{ dbt.type_int() }}) as events_prev_7d,
        snapshots.plan,
        coalesce(snapshots.plan in {{ sql_list(plan['paid_plans']) }}, false) as is_paid,
        cast(coalesce(mrr.mrr, 0.0) as {{ segflow_double() }}) as mrr,
        cast(
            coalesce(prior_totals.revenue, 0.0) + snapshots.revenue_running
            as {{ segflow_double() }}
        ) as revenue_to_date,
        snapshots.industry,
        snapshots.company_size,
        snapshots.country,
        snapshots.role,
        snapshots.acquisition_channel,
        snapshots.active_days_28d > 0 as is_active_28d
    from snapshots
    left join prior_totals on snapshots.user_id = prior_totals.user_id
    left join mrr
        on snapshots.user_id = mrr.user_id and snapshots.snapshot_date = mrr.snapshot_date

)

select * from features
