-- depends_on: {{ ref('int_user_custom_attributes') }}
-- One row per user (CRM): demographics, signup cohort, current plan and lifecycle stage as of
-- the last day with data. Lifecycle, first match wins: churned (no activity for more than
-- churn_window_days, signed up at least that long ago), paying (paid plan), at_risk (no
-- activity for more than 7 days), activated (reached the value milestone), new (signed up in
-- the last 7 days), onboarding (everyone else). The custom CRM attributes sources.yml declares
-- (var custom_attributes) follow as of the latest CRM version, typed, named after themselves.
{%- set churn_days = setting('churn_window_days') | int -%}
{%- set milestones = var('tracking_plan')['milestones'] -%}
{%- set value_milestone = var('value_milestone', milestones[-1]['name']) %}
with contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

{%- if custom_attributes() %}

    custom_attributes as (
        select * from {{ ref('int_user_custom_attributes') }}
    ),

    latest_attributes as (
        select * from custom_attributes
        where valid_to_date is null
    ),
{%- endif %}

activity as (
    select
        user_id,
        max(case when activity_events > 0 then activity_date end) as last_active_date,
        max(case when first_{{ value_milestone }} then 1 else 0 end) as reached_value
    from {{ ref('int_user_activity_daily') }}
    group by user_id
),

data_end as (
    {{ data_end_select(ref('int_user_activity_daily')) }}
),

users as (
    select
        contacts.*,
        {%- for attribute in custom_attributes() %}
        latest_attributes.{{ attribute.name }},
        {%- endfor %}
        activity.last_active_date,
        coalesce(activity.reached_value, 0) = 1 as reached_value,
        {{ dbt.datediff('contacts.signup_date', 'data_end.data_end_date', 'day') }}
            as days_since_signup,
        {{ dbt.datediff('activity.last_active_date', 'data_end.data_end_date', 'day') }}
            as days_inactive
    from contacts
    cross join data_end
    left join activity on contacts.user_id = activity.user_id
    {%- if custom_attributes() %}
        left join latest_attributes on contacts.user_id = latest_attributes.user_id
    {%- endif %}
)

select
    user_id,
    email,
    signup_at,
    signup_date,
    cast({{ dbt.date_trunc('week', 'signup_date') }} as date) as signup_week,
    cast({{ dbt.date_trunc('month', 'signup_date') }} as date) as signup_month,
    company,
    industry,
    company_size,
    country,
    role,
    acquisition_channel,
    plan as current_plan,
    case
        when
            days_since_signup >= {{ churn_days }}
            and coalesce(days_inactive, days_since_signup) > {{ churn_days }}
            then 'churned'
        when plan in {{ sql_list(var('tracking_plan')['paid_plans']) }} then 'paying'
        when coalesce(days_inactive, days_since_signup) > 7 then 'at_risk'
        when reached_value then 'activated'
        when days_since_signup < 7 then 'new'
        else 'onboarding'
    end as lifecycle_stage,
    last_active_date
{%- for attribute in custom_attributes() %},
    {{ attribute.name }}
    {%- endfor %}
from users
