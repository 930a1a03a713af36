{#
  Cohort x period grid for the retention marts: every cohort of `cohorts_cte` (columns
  cohort_grain, cohort_start, cohort_size) with each calendar period (`grain`) from the cohort
  start up to the last period that has ended by data_end_date (column of `data_end_cte`).
  The grid is dense, so a period in which nothing happened still gets a row (left-join the
  counts onto it). Periods come from a day calendar, so no period number needs to have been
  observed anywhere. Columns: cohort_grain, cohort_start, cohort_size, period_number.
#}
{% macro cohort_period_grid(grain, cohorts_cte, calendar_cte, data_end_cte) -%}
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
{%- endmacro %}
