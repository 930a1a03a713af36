-- Signup-cohort retention, long format: for weekly and monthly cohorts (cohort_grain), each
-- period since the cohort's start (calendar weeks / months, period 0 = the signup period):
-- cohort_size, retained_users (users with any activity in that period), retention_rate.
-- Every period that has ended by the last day with data has a row, including periods in which
-- nobody returned (retained_users = 0): the counts are left-joined onto a cohort x period grid.
-- A run copies the cells whose inputs did not change from the stored mart and computes the
-- periods from `floor` on (macros/cohort_increments.sql; every cell on a first build).
{{ config(post_hook="{{ cohort_inputs_store() }}") }}
{%- set users_rel = ref('dim_users') -%}
{%- set activity_rel = ref('int_user_activity_daily') -%}
{%- set floor = cohort_retention_floor(users_rel, activity_rel) %}
with activity as (
    select
        user_id,
        activity_date
    from {{ activity_rel }}
    -- what counts as activity: a setting (business_events.sql); on a run from stored rows,
    -- only the days from the first period computed below on
    where
        activity_events > 0
    {% if floor %}
        and activity_date >= least(
            {{ period_start_of('week', floor) }}, {{ period_start_of('month', floor) }}
        )
    {% endif %}
),

{{ retention_frame(users_rel, activity_rel) }},

{% for grain in ['week', 'month'] %}
{{ signup_cohorts(grain, 'users') }},

{{ grain }}_grid as (
    {{ cohort_period_grid(grain, grain ~ '_cohorts', 'calendar', 'data_end',
                          period_start_of(grain, floor) if floor else none) }}
),

-- Each user's active periods once: a user counts once per period, so the counts below need
-- no count(distinct) over every active day. A cohort starts on a period boundary, so
-- "active on or after the cohort start" is "an active period on or after it".
{{ grain }}_active_periods as (
    select distinct
        user_id,
        {{ dbt.date_trunc(grain, 'activity_date') }} as period_start
    from activity
),

{{ grain }}_active as (
    select
        c.cohort_grain,
        c.cohort_start,
        {{ dbt.datediff('c.cohort_start', 'a.period_start', grain) }}
            as period_number,
        count(*) as retained_users
    from {{ grain }}_cohort_users as c
    inner join {{ grain }}_active_periods as a
        on c.user_id = a.user_id and c.cohort_start <= a.period_start
    group by
        c.cohort_grain,
        c.cohort_start,
        {{ dbt.datediff('c.cohort_start', 'a.period_start', grain) }}
),

{{ grain }}_retention as (
    select
        g.cohort_grain,
        g.cohort_start,
        g.period_number,
        g.cohort_size,
        coalesce(a.retained_users, 0) as retained_users
    from {{ grain }}_grid as g
    left join {{ grain }}_active as a
        on g.cohort_start = a.cohort_start and g.period_number = a.period_number
){{ "," if not loop.last }}
{% endfor %}

select
    cohort_grain,
    cohort_start,
    cast(period_number as {{ dbt.type_int() }}) as period_number,
    cast(cohort_size as {{ dbt.type_int() }}) as cohort_size,
    cast(retained_users as {{ dbt.type_int() }}) as retained_users,
    cast(retained_users as {{ segflow_double() }}) / cohort_size as retention_rate
from (
    select * from week_retention
    union all
    select * from month_retention
) as retention
{%- if floor %}
union all
select
    stored.cohort_grain,
    stored.cohort_start,
    stored.period_number,
    stored.cohort_size,
    stored.retained_users,
    stored.retention_rate
from {{ this }} as stored
where
    {%- for grain in ['week', 'month'] %}
    (
        stored.cohort_grain = '{{ grain }}'
        and {{ dbt.dateadd(grain, 'stored.period_number', 'stored.cohort_start') }}
        < {{ period_start_of(grain, floor) }}
    ){{ " or" if not loop.last }}
    {%- endfor %}
{%- endif %}
