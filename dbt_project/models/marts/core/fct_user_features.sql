-- depends_on: {{ ref('int_user_custom_attributes') }}
-- Point-in-time user features: one row per known customer (every CRM contact from its signup
-- day) per snapshot_date, churned ones included and flagged, computed only from data dated
-- on or before snapshot_date (events by event date, CRM by the version valid that day,
-- invoices by paid date).
-- Churn state at the snapshot (vars.churn_definition):
--   inactivity:   is_inactive = no activity for churn_window_days days (never-active users
--                 count from their signup day);
--   cancellation: is_cancelled = a declared cancel event not followed by a new paid invoice,
--                 or the last paid period ended more than cancel_grace_days ago without renewal.
-- Defaults for quiet users and missing CRM fields (nothing here is null by accident):
--   days_since_last_active: days since signup when the user has no activity yet;
--   is_paid: false when the CRM plan is empty; plan/industry/...: null = not provided;
--   days_since_first_active, days_since_*_purchase, mean_active_gap_days, recency_ratio,
--   days_to_first_value: null = never happened (no activity / purchase / gap yet);
--   counts, shares and avg_order_value: 0 when there is nothing to count.
-- Built from ephemeral int_ models (models/intermediate/features/): the rebuilt days per user
-- (int_user_feature_regions), rolling windows over a grid dense on those days and sparse on
-- the 27-day look-back before them (int_user_feature_windows), all-time totals before the grid
-- (int_user_feature_prior_totals), the CRM version and MRR of the day
-- (int_user_feature_snapshots); here the custom attributes and the derived columns.
-- Incremental (roll-forward): per user, the snapshot dates from min(min_date -
-- late_arrival_days, the user's cut) on are rebuilt when the user has data in that window
-- (late events change the windows of the days after them); any other user gets only the days
-- after the stored ones (int_user_feature_regions); each user's rows from the first rebuilt
-- day on are replaced. A new day reads the window's look-back of activity, not every day of
-- every user.
{%- set plan = var('tracking_plan') -%}
{%- set milestones = plan['milestones'] -%}
{%- set counters = var('milestone_counters') -%}
{%- set churn_days = setting('churn_window_days') | int -%}
{%- set churn_definition = setting('churn_definition') | trim | lower -%}
{%- set grace_days = setting('cancel_grace_days') | int -%}
{%- set new_account_days = var('new_account_days') | int -%}
{%- if churn_definition not in ['inactivity', 'cancellation'] -%}
{{ exceptions.raise_compiler_error("vars.churn_definition (SEGFLOW_CHURN_DEFINITION) = '" ~ churn_definition ~ "': expected inactivity or cancellation") }}
{%- endif -%}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    unique_key=['user_id', 'snapshot_date'],
    replace_where_floor={
        'column': 'snapshot_date', 'type': 'date', 'expression': 'min(snapshot_date)'
    },
    incremental_predicates=[
        "exists (select 1 from (select user_id as cut_user_id, min(snapshot_date) as cut_date"
        ~ " from DBT_INTERNAL_SOURCE group by 1) as cuts"
        ~ " where cuts.cut_user_id = user_id and snapshot_date >= cuts.cut_date)"
    ],
) }}


with
features as (
    select * from {{ ref('int_user_feature_snapshots') }}
),
{%- if custom_attributes() %}

    custom_attributes as (
        select * from {{ ref('int_user_custom_attributes') }}
    ),
{%- endif %}

-- The custom CRM attributes (sources.yml `attributes:`) as they were on the snapshot date.
features_with_attributes as (
    select
    {%- for attribute in custom_attributes() %}
        {{ custom_attribute_feature('custom_attributes.' ~ attribute.name, attribute,
            'features.snapshot_date') }} as {{ attribute.column }},
        {%- endfor %}
        features.*
    from features
    {%- if custom_attributes() %}
        left join custom_attributes
            on
                features.user_id = custom_attributes.user_id
                and features.snapshot_date >= custom_attributes.valid_from_date
                and (
                    custom_attributes.valid_to_date is null
                    or features.snapshot_date < custom_attributes.valid_to_date
                )
    {%- endif %}
)

select
    user_id,
    snapshot_date,
    signup_date,
    days_since_signup,
    days_since_last_active,
    cast(
        {{ dbt.datediff('first_active_date', 'snapshot_date', 'day') }}
        as {{ dbt.type_int() }}
    ) as days_since_first_active,
    active_days_total,
    cast(
        case
            when active_days_total > 1
                then
                    cast(
                        {{ dbt.datediff('first_active_date', 'last_active_date', 'day') }}
                        as {{ segflow_double() }}
                    )
                    / (active_days_total - 1)
        end as {{ segflow_double() }}
    ) as mean_active_gap_days,
    cast(
        case
            when
                active_days_total > 1
                and
                {{ dbt.datediff('first_active_date', 'last_active_date', 'day') }}
                > 0

                then
                    cast(days_since_last_active as {{ segflow_double() }}) * (active_days_total - 1)
                    / {{ dbt.datediff('first_active_date', 'last_active_date', 'day') }}
        end as {{ segflow_double() }}
    ) as recency_ratio,
    purchases_total,
    cast(
        {{ dbt.datediff('first_purchase_date', 'snapshot_date', 'day') }}
        as {{ dbt.type_int() }}
    ) as days_since_first_purchase,
    cast(
        {{ dbt.datediff('last_purchase_date', 'snapshot_date', 'day') }}
        as {{ dbt.type_int() }}
    ) as days_since_last_purchase,
    cast(
        case when purchases_total > 0 then revenue_to_date / purchases_total else 0.0 end
        as {{ segflow_double() }}
    ) as avg_order_value,
    case
        when days_since_signup < 7 then '0-6d'
        when days_since_signup < 28 then '7-27d'
        when days_since_signup < 90 then '28-89d'
        when days_since_signup < 365 then '90-364d'
        else '365d+'
    end as tenure_bucket,
    days_since_signup < {{ new_account_days }} as is_new_account,
    active_days_7d,
    active_days_28d,
    events_7d,
    events_28d,
    sessions_7d,
    sessions_28d,
    avg_session_minutes_28d,
    feature_breadth_28d,
    feature_depth_28d,
    cast(
        0
        {% for m in milestones -%}
        + case when reached_{{ m['name'] }} then 1 else 0 end
        {% endfor -%}
        as {{ dbt.type_int() }}
    ) as milestones_reached,
    cast(
        (
            0
            {% for m in milestones -%}
            + case when reached_{{ m['name'] }} then 1 else 0 end
            {% endfor -%}
        ) / {{ milestones | length }}.0 as {{ segflow_double() }}
    ) as onboarding_completion,
    {% for m in milestones -%}
    reached_{{ m['name'] }},
    {% endfor -%}
    case
        when days_to_first_value_raw < 0 then 0 else days_to_first_value_raw
    end as days_to_first_value,
    {% for column in counters -%}
    {{ column }},
    {% endfor -%}
    support_tickets_28d,
    support_tickets_total,
    {% for feature in plan['core_features'] -%}
    evt_{{ slug(feature) }}_7d,
    evt_{{ slug(feature) }}_28d,
    evt_{{ slug(feature) }}_change_7d,
    evt_{{ slug(feature) }}_share_28d,
    {% endfor -%}
    events_prev_7d,
    cast(
        cast(events_7d - events_prev_7d as {{ segflow_double() }})
        / case when events_prev_7d > 1 then events_prev_7d else 1 end
        as {{ segflow_double() }}
    ) as activity_trend,
    plan,
    is_paid,
    mrr,
    revenue_to_date,
    industry,
    company_size,
    country,
    role,
    acquisition_channel,
    is_active_28d,
    days_since_last_active >= {{ churn_days }} as is_inactive,
    coalesce(
        (
            last_cancel_date is not null
            and (last_purchase_date is null or last_purchase_date <= last_cancel_date)
        )
        or {{ dbt.dateadd('day', grace_days, 'paid_through_date') }} < snapshot_date,
        false
    ) as is_cancelled,
    {% if churn_definition == 'cancellation' -%}
    coalesce(
        (
            last_cancel_date is not null
            and (last_purchase_date is null or last_purchase_date <= last_cancel_date)
        )
        or {{ dbt.dateadd('day', grace_days, 'paid_through_date') }} < snapshot_date,
        false
    )
    {%- else -%}

    days_since_last_active >= {{ churn_days }}
    {%- endif %} as is_churned
{%- for attribute in custom_attributes() %},
    {{ attribute.column }}
    {%- endfor %}
from features_with_attributes
