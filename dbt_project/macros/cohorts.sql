{#
  Cohort x period grid for the retention marts: every cohort of `cohorts_cte` (columns
  cohort_grain, cohort_start, cohort_size) with each calendar period (`grain`) from the cohort
  start up to the last period that has ended by data_end_date (column of `data_end_cte`).
  The grid is dense, so a period in which nothing happened still gets a row (left-join the
  counts onto it). Periods come from a day calendar, so no period number needs to have been
  observed anywhere. Columns: cohort_grain, cohort_start, cohort_size, period_number.
  With `periods_from` (a date expression): only the periods starting on or after it.
#}
{% macro cohort_period_grid(grain, cohorts_cte, calendar_cte, data_end_cte, periods_from=none) -%}
  select
      c.cohort_grain,
      c.cohort_start,
      c.cohort_size,
      {{ dbt.datediff('c.cohort_start', 'periods.period_start', grain) }} as period_number
  from {{ cohorts_cte }} as c
  inner join (
      select distinct cast({{ dbt.date_trunc(grain, 'calendar_date') }} as date) as period_start
      from {{ calendar_cte }}
  ) as periods
      on periods.period_start >= c.cohort_start
  cross join {{ data_end_cte }} as data_end
  where {{ dbt.dateadd(grain, 1, 'periods.period_start') }} <= {{ dbt.dateadd('day', 1, 'data_end.data_end_date') }}
  {%- if periods_from is not none %}
    and periods.period_start >= {{ periods_from }}
  {%- endif %}
{%- endmacro %}

{#
  The last day with data: the latest activity_date of int_user_activity_daily (`activity_rel`),
  as one row with column data_end_date. Whether a period or an outcome window has ended is
  judged against it everywhere (retention marts, label windows, segment KPIs, tenure).
  With `prior_to` (a date expression) also prior_end_date: the latest activity_date before it.
#}
{% macro data_end_select(activity_rel, prior_to=none) -%}
  select
    max(activity_date) as data_end_date
    {%- if prior_to is not none %},
    max(case when activity_date < {{ prior_to }} then activity_date end) as prior_end_date
    {%- endif %}
  from {{ activity_rel }}
{%- endmacro %}

{#
  The retention marts' frame: CTEs `users` (user_id, signup_date of `users_rel`), `data_end`
  (data_end_select) and `calendar`, every day from the first signup to the last day with data;
  periods are derived from it.
#}
{% macro retention_frame(users_rel, activity_rel) -%}
users as (
    select
        user_id,
        signup_date
    from {{ users_rel }}
),

data_end as (
    {{ data_end_select(activity_rel) }}
),

calendar as (
    {{ calendar_between("(select min(signup_date) from " ~ users_rel ~ ")",
                        "(" ~ data_end_select(activity_rel) ~ ")") }}
)
{%- endmacro %}

{#
  Signup cohorts of one grain ('week' or 'month'): CTEs `<grain>_cohort_users` (cohort_grain,
  cohort_start = the signup's calendar week / month, user_id) and `<grain>_cohorts`
  (cohort_grain, cohort_start, cohort_size), from the CTE `users_cte` (user_id, signup_date).
#}
{% macro signup_cohorts(grain, users_cte) -%}
{{ grain }}_cohort_users as (
    select
        '{{ grain }}' as cohort_grain,
        cast({{ dbt.date_trunc(grain, users_cte ~ '.signup_date') }} as date) as cohort_start,
        {{ users_cte }}.user_id
    from {{ users_cte }}
),

{{ grain }}_cohorts as (
    select
        cohort_grain,
        cohort_start,
        count(*) as cohort_size
    from {{ grain }}_cohort_users
    group by cohort_grain, cohort_start
)
{%- endmacro %}
