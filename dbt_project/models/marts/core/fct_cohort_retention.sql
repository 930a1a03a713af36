-- Signup-cohort retention, long format: for weekly and monthly cohorts (cohort_grain), each
-- period since the cohort's start (calendar weeks / months, period 0 = the signup period):
-- cohort_size, retained_users (users with any activity in that period), retention_rate.
-- Only periods that have ended by the last day with data are included.
with users as (
    select user_id, signup_date from {{ ref('dim_users') }}
),

activity as (
    select user_id, activity_date from {{ ref('int_user_activity_daily') }}
),

data_end as (
    select max(activity_date) as data_end_date from activity
),

{% for grain in ['week', 'month'] %}
{{ grain }}_cohorts as (
    select
        '{{ grain }}' as cohort_grain,
        cast({{ dbt.date_trunc(grain, 'users.signup_date') }} as date) as cohort_start,
        users.user_id
    from users
),

{{ grain }}_activity as (
    select distinct
        c.cohort_grain,
        c.cohort_start,
        c.user_id,
        {{ dbt.datediff('c.cohort_start', dbt.date_trunc(grain, 'a.activity_date'), grain) }} as period_number
    from {{ grain }}_cohorts as c
    inner join activity as a on a.user_id = c.user_id and a.activity_date >= c.cohort_start
),

{{ grain }}_periods as (
    select
        c.cohort_grain,
        c.cohort_start,
        count(*) as cohort_size
    from {{ grain }}_cohorts as c
    group by 1, 2
),

{{ grain }}_retention as (
    select
        p.cohort_grain,
        p.cohort_start,
        a.period_number,
        p.cohort_size,
        count(distinct a.user_id) as retained_users
    from {{ grain }}_periods as p
    inner join {{ grain }}_activity as a
        on a.cohort_grain = p.cohort_grain and a.cohort_start = p.cohort_start
    cross join data_end
    where {{ dbt.dateadd(grain, 'a.period_number + 1', 'p.cohort_start') }} <= {{ dbt.dateadd('day', 1, 'data_end.data_end_date') }}
    group by 1, 2, 3, 4
){{ "," if not loop.last }}
{% endfor %}

select
    cohort_grain,
    cohort_start,
    cast(period_number as {{ dbt.type_int() }}) as period_number,
    cast(cohort_size as {{ dbt.type_int() }}) as cohort_size,
    cast(retained_users as {{ dbt.type_int() }}) as retained_users,
    cast(retained_users * 1.0 / cohort_size as {{ dbt.type_float() }}) as retention_rate
from (
    select * from week_retention
    union all
    select * from month_retention
) as retention
