-- Onboarding funnel, long format: for each group (dimension / dimension_value: all users,
-- signup week, signup month, industry, company size, country, role, acquisition channel) and
-- each milestone of vars.tracking_plan in order: users in the group, users who reached the
-- milestone, share of the group, conversion from the previous step (reached this / reached
-- previous; step 1 = share of the group), drop-off from the previous step (users), and the
-- median days from signup to first reaching it. The rates are macros/funnel.sql's.
-- Sequential funnel: a user counts at step k (users_reached) only after reaching steps 1..k
-- (in any time order), so users_reached never grows along the steps, conversion stays in
-- [0, 1] and drop-off is never negative even when users skip steps. users_reached_any_order
-- counts everyone who reached the milestone regardless of the earlier steps.
{%- set milestones = var('tracking_plan')['milestones'] -%}
{%- set dimensions = [
    'signup_week', 'signup_month', 'industry', 'company_size', 'country', 'role',
    'acquisition_channel',
] %}
with firsts as (
    select
        {% for m in milestones -%}
        min(case when first_{{ m['name'] }} then activity_date end) as first_date_{{ m['name'] }},
        {% endfor -%}
        user_id
    from {{ ref('int_user_activity_daily') }}
    -- only a day with a first_ flag holds a first date (a few rows per user): a user without
    -- one gets no row here and nulls from the left join below, as from a row of nulls
    where
        false
        {%- for m in milestones %}
        or first_{{ m['name'] }}
        {%- endfor %}
    group by user_id
),

users as (
    select
        {% for d in dimensions -%}
        cast(u.{{ d }} as {{ dbt.type_string() }}) as {{ d }},
        {% endfor -%}
        {% for m in milestones -%}
        f.first_date_{{ m['name'] }},
        {% endfor -%}
        {% for m in milestones -%}
        {{ funnel_reached_through(milestones, loop.index, 'f.first_date_', ' is not null') }}
            as reached_through_{{ m['name'] }},
        {% endfor -%}
        u.user_id,
        u.signup_date
    from {{ ref('dim_users') }} as u
    left join firsts as f on u.user_id = f.user_id
),

-- Each group's counts for every milestone in one pass over its users (one aggregate per
-- dimension, not one per dimension and milestone), then one row per milestone (steps).
group_counts as (
    {% for d in ['all'] + dimensions %}
    select
        '{{ d }}' as dimension,
        {% if d == 'all' -%}
        'all'
        {%- else -%}
        coalesce(users.{{ d }}, 'unknown')
        {%- endif %} as dimension_value,
        {% for m in milestones -%}
        sum(case when users.reached_through_{{ m['name'] }} then 1 else 0 end)
            as users_reached_{{ m['name'] }},
        count(users.first_date_{{ m['name'] }}) as users_reached_any_order_{{ m['name'] }},
        {{ median("case when users.reached_through_" ~ m['name'] ~ " then "
                  ~ dbt.datediff('users.signup_date', 'users.first_date_' ~ m['name'], 'day')
                  ~ " end") }}
            as median_days_to_reach_{{ m['name'] }},
        {% endfor -%}
        count(*) as users_in_group
    from users
    group by dimension, dimension_value
    {{ "union all" if not loop.last }}
    {% endfor %}
),

steps as (
    {% for m in milestones %}
    select
        dimension,
        dimension_value,
        {{ loop.index }} as step_number,
        '{{ m['name'] }}' as milestone,
        users_in_group,
        users_reached_{{ m['name'] }} as users_reached,
        users_reached_any_order_{{ m['name'] }} as users_reached_any_order,
        median_days_to_reach_{{ m['name'] }} as median_days_to_reach
    from group_counts
    {{ "union all" if not loop.last }}
    {% endfor %}
),

with_previous as (
    select
        steps.*,
        {{ funnel_previous_reached('steps.dimension, steps.dimension_value') }}
            as previous_reached
    from steps
)

select
    dimension,
    dimension_value,
    cast(step_number as {{ dbt.type_int() }}) as step_number,
    milestone,
    cast(users_in_group as {{ dbt.type_int() }}) as users_in_group,
    cast(users_reached as {{ dbt.type_int() }}) as users_reached,
    cast(users_reached_any_order as {{ dbt.type_int() }}) as users_reached_any_order,
    {{ funnel_step_rates('users_in_group') }},
    cast(median_days_to_reach as {{ segflow_double() }}) as median_days_to_reach
from with_previous
