{# Median: ordered-set aggregate where the adapter has it (DuckDB, Postgres, Snowflake). #}
{% macro median(expr) -%}{{ return(adapter.dispatch('median', 'segflow')(expr)) }}{%- endmacro %}
{% macro default__median(expr) -%}percentile_cont(0.5) within group (order by {{ expr }}){%- endmacro %}
{% macro bigquery__median(expr) -%}approx_quantiles({{ expr }}, 2)[offset(1)]{%- endmacro %}

{# One output row per element of an array column (select-list form). #}
{% macro unnest_array(expr) -%}{{ return(adapter.dispatch('unnest_array', 'segflow')(expr)) }}{%- endmacro %}
{% macro default__unnest_array(expr) -%}unnest({{ expr }}){%- endmacro %}

{# Amount in USD with the fixed rates of vars.fx_rates_to_usd; unknown currencies give null. #}
{% macro to_usd(amount, currency) -%}
  ({{ amount }} * case upper({{ currency }})
  {%- for code, rate in var('fx_rates_to_usd').items() %} when '{{ code }}' then {{ rate }}{% endfor %}
  else null end)
{%- endmacro %}

{#
  A dense calendar CTE body from start_sql to end_sql (inclusive), cross-database through
  dbt.generate_series. The number of days is looked up when the model runs.
#}
{% macro calendar_between(start_sql, end_sql) -%}
  {%- set n_days = 1 -%}
  {%- if execute -%}
    {%- set result = run_query("select " ~ dbt.datediff(start_sql, end_sql, 'day') ~ " + 1") -%}
    {%- set value = result.columns[0].values()[0] -%}
    {%- set n_days = [value | int if value is not none else 1, 1] | max -%}
  {%- endif -%}
  select cast({{ dbt.dateadd('day', 'generated_number - 1', start_sql) }} as date) as calendar_date
  from ({{ dbt.generate_series(n_days) }}) as series
{%- endmacro %}
