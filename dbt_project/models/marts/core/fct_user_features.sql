-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- depends_on: {{ ref('int_sessions') }}
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
-- Built on a dense user x day grid with rolling ROWS frames; all-time totals are the stored
-- totals before the grid plus running sums on it.
-- Incremental: snapshot dates from min(min_date - late_arrival_days, the user's cut) on are
-- rebuilt (late events change the windows of the days after them).
{%- set plan = var('tracking_plan') -%}
{%- set milestones = plan['milestones'] -%}
{%- set counters = var('milestone_counters') -%}
{%- set value_milestone = var('value_milestone', milestones[-1]['name']) -%}
{%- set churn_days = var('churn_window_days') | int -%}
{%- set churn_definition = var('churn_definition') | trim | lower -%}
{%- set grace_days = var('cancel_grace_days') | int -%}
{%- set new_account_days = var('new_account_days') | int -%}
{%- if churn_definition not in ['inactivity', 'cancellation'] -%}
{{ exceptions.raise_compiler_error("vars.churn_definition (SEGFLOW_CHURN_DEFINITION) = '" ~ churn_definition ~ "': expected inactivity or cancellation") }}
{%- endif -%}
{%- set history_days = [churn_days, 28] | max -%}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    unique_key=['user_id', 'snapshot_date'],
    incremental_predicates=[
        "snapshot_date >= " ~ reprocess_from()
        ~ " or exists (select 1 from (select user_id as cut_user_id, min(snapshot_date) as cut_date"
        ~ " from DBT_INTERNAL_SOURCE group by 1) as cuts"
        ~ " where cuts.cut_user_id = user_id and snapshot_date >= cuts.cut_date)"
    ],
) }}

{%- set daily_rel = ref('int_user_activity_daily') -%}
{%- set contacts_rel = ref('stg_crm__contact_snapshots') -%}
{%- set max_date_sql = max_date() %}

with
{% if is_incremental() %}
stitched_cuts as ({{ stitched_cuts_cte() }}),
cuts as ({{ user_reprocess_cuts(ref('int_sessions')) }}),
{% endif %}

daily as (
    select * from {{ daily_rel }}
),

contact_versions as (
    select * from {{ contacts_rel }}
),

{%- if custom_attributes() %}

    custom_attributes as (
        select * from {{ ref('int_user_custom_attributes') }}
    ),
{%- endif %}

-- Paid invoices (revenue, MRR) and purchases: which invoices / track calls count as a
-- purchase is a setting (macros/business_events.sql); purchase events carry no amount.
revenue_invoices as (
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
    from daily
    where purchase_events > 0
),

data_end as (
    select max(activity_date) as data_end_date from daily
),

calendar as (
    {{ calendar_between(
        "(select min(first_date) from (select min(activity_date) as first_date from " ~ daily_rel
        ~ " union all select min(signup_date) from " ~ contacts_rel
        ~ " union all select min(valid_from_date) from " ~ contacts_rel ~ ") as firsts)",
        "(select max(activity_date) from " ~ daily_rel ~ ")") }}
),

user_first as (
    select
        firsts.user_id,
        min(firsts.first_date) as first_date
    from (
        select
            user_id,
            min(activity_date) as first_date
        from daily
        group by user_id
        union all
        select
            user_id,
            min(
                case when signup_date < valid_from_date then signup_date else valid_from_date end
            ) as first_date
        from contact_versions
        group by user_id
    ) as firsts
    group by firsts.user_id
),

user_region as (
    select
        user_first.user_id,
        user_first.first_date,
        {% if is_incremental() %}
        case when cuts.cut_date < {{ reprocess_from() }} then cuts.cut_date else {{ reprocess_from() }} end
        {% else %}
        user_first.first_date
        {% endif %} as region_start
    from user_first
    {% if is_incremental() %}
    left join cuts on cuts.user_id = user_first.user_id
    {% endif %}
),

user_bounds as (
    select
        user_id,
        region_start,
        greatest(
            first_date, {{ dbt.dateadd('day', -(history_days - 1), 'region_start') }}
        ) as grid_start
    from user_region
),

grid as (
    select
        user_bounds.user_id,
        calendar.calendar_date as snapshot_date,
        user_bounds.region_start
    from user_bounds
    inner join calendar
        on
            user_bounds.grid_start <= calendar.calendar_date
            and calendar.calendar_date <= (select data_end.data_end_date from data_end)
),

-- All-time totals from before the grid (empty on a full build: the grid starts at day one).
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
    from daily
    inner join user_bounds
        on daily.user_id = user_bounds.user_id and daily.activity_date < user_bounds.grid_start
    group by daily.user_id
),

prior_revenue as (
    select
        revenue_invoices.user_id,
        {{ exact_sum('revenue_invoices.amount_usd') }} as revenue,
        sum(case when revenue_invoices.is_purchase then 1 else 0 end) as purchases,
        min(case when revenue_invoices.is_purchase then revenue_invoices.paid_date end)
            as first_purchase_date,
        max(case when revenue_invoices.is_purchase then revenue_invoices.paid_date end)
            as last_purchase_date,
        max(revenue_invoices.period_end_date) as paid_through_date
    from revenue_invoices
    inner join user_bounds
        on
            revenue_invoices.user_id = user_bounds.user_id
            and revenue_invoices.paid_date < user_bounds.grid_start
    group by revenue_invoices.user_id
),

revenue_daily as (
    select
        user_id,
        paid_date,
        {{ exact_sum('amount_usd') }} as revenue,
        sum(case when is_purchase then 1 else 0 end) as purchases,
        max(period_end_date) as paid_through_date
    from revenue_invoices
    group by user_id, paid_date
),

dense as (
    select
        grid.user_id,
        grid.snapshot_date,
        grid.region_start,
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
        sum(events) over (
            partition by user_id order by snapshot_date rows between 13 preceding and 7 preceding
        ) as events_prev_7d,
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
        sum(feature_{{ slug(feature) }}_events) over (
            partition by user_id order by snapshot_date rows between 13 preceding and 7 preceding
        ) as feature_{{ slug(feature) }}_prev_7d,
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
),

snapshots as (
    select
        rolled.*,
        contact_versions.signup_date,
        contact_versions.plan,
        contact_versions.industry,
        contact_versions.company_size,
        contact_versions.country,
        contact_versions.role,
        contact_versions.acquisition_channel
    from rolled
    inner join contact_versions
        on
            rolled.user_id = contact_versions.user_id
            and rolled.snapshot_date >= contact_versions.valid_from_date
            and (
                contact_versions.valid_to_date is null
                or rolled.snapshot_date < contact_versions.valid_to_date
            )
    where
        rolled.snapshot_date >= rolled.region_start
        and rolled.snapshot_date >= contact_versions.signup_date
),

mrr as (
    select
        snapshots.user_id,
        snapshots.snapshot_date,
        {{ exact_sum('revenue_invoices.monthly_amount_usd') }} as mrr
    from snapshots
    inner join revenue_invoices
        on
            snapshots.user_id = revenue_invoices.user_id
            and snapshots.snapshot_date >= revenue_invoices.paid_date
            and snapshots.snapshot_date >= revenue_invoices.period_start_date
            and snapshots.snapshot_date < revenue_invoices.period_end_date

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
                'coalesce(snapshots.last_active_date, prior_activity.last_active_date)',
                'snapshots.snapshot_date', 'day',
            ) }},
            {{ dbt.datediff('snapshots.signup_date', 'snapshots.snapshot_date', 'day') }}
        ) as {{ dbt.type_int() }}) as days_since_last_active,
        coalesce(snapshots.last_active_date, prior_activity.last_active_date) as last_active_date,
        coalesce(prior_activity.first_active_date, snapshots.first_active_date)
            as first_active_date,
        cast(
            coalesce(prior_activity.active_days, 0) + snapshots.active_days_running
            as {{ dbt.type_int() }}
        ) as active_days_total,
        cast(
            coalesce(prior_revenue.purchases, 0) + snapshots.purchases_running
            as {{ dbt.type_int() }}
        ) as purchases_total,
        coalesce(prior_revenue.first_purchase_date, snapshots.first_purchase_date)
            as first_purchase_date,
        coalesce(snapshots.last_purchase_date, prior_revenue.last_purchase_date)
            as last_purchase_date,
        greatest(
            coalesce(snapshots.paid_through_date, prior_revenue.paid_through_date),
            coalesce(prior_revenue.paid_through_date, snapshots.paid_through_date)
        ) as paid_through_date,
        greatest(
            coalesce(snapshots.last_cancel_date, prior_activity.last_cancel_date),
            coalesce(prior_activity.last_cancel_date, snapshots.last_cancel_date)
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
                    then snapshots.feature_{{ slug(feature) }}_28d * 1.0 / snapshots.events_28d
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
            prior_activity.first_date_{{ m['name'] }}, snapshots.first_date_{{ m['name'] }}
        ) is not null as reached_{{ m['name'] }},
        {% endfor -%}
        cast(
            {{ dbt.datediff(
                'snapshots.signup_date',
                'coalesce(prior_activity.first_date_' ~ value_milestone
                ~ ', snapshots.first_date_' ~ value_milestone ~ ')',
                'day',
            ) }}
            as {{ dbt.type_int() }}
        ) as days_to_first_value_raw,
        cast(
            coalesce(prior_activity.support_tickets, 0) + snapshots.support_tickets_running
            as {{ dbt.type_int() }}
        ) as support_tickets_total,
        cast(snapshots.support_tickets_28d as {{ dbt.type_int() }}) as support_tickets_28d,
        {% for column in counters -%}
        cast(
            coalesce(prior_activity.{{ column }}, 0) + snapshots.{{ column }}_running
            as {{ dbt.type_int() }}
        ) as {{ column }},
        {% endfor -%}
        cast(coalesce(snapshots.events_prev_7d, 0) as {{ dbt.type_int() }}) as events_prev_7d,
        snapshots.plan,
        coalesce(snapshots.plan in {{ sql_list(plan['paid_plans']) }}, false) as is_paid,
        cast(coalesce(mrr.mrr, 0.0) as {{ segflow_double() }}) as mrr,
        cast(
            coalesce(prior_revenue.revenue, 0.0) + snapshots.revenue_running
            as {{ segflow_double() }}
        ) as revenue_to_date,
        snapshots.industry,
        snapshots.company_size,
        snapshots.country,
        snapshots.role,
        snapshots.acquisition_channel,
        snapshots.active_days_28d > 0 as is_active_28d
    from snapshots
    left join prior_activity on snapshots.user_id = prior_activity.user_id
    left join prior_revenue on snapshots.user_id = prior_revenue.user_id
    left join mrr
        on snapshots.user_id = mrr.user_id and snapshots.snapshot_date = mrr.snapshot_date

),

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
                    {{ dbt.datediff('first_active_date', 'last_active_date', 'day') }}
                    * 1.0 / (active_days_total - 1)
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
                    days_since_last_active * (active_days_total - 1.0)
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
        (events_7d - events_prev_7d) * 1.0
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
