{#- segflow's settings reach dbt as --vars from `segflow dbt-vars` (orchestration/run_window.py,
    dbt_vars); dbt_project.yml keeps no copy. A setting that is missing is a compile error that
    names it. Under vars.lint_only (a bare `sqlfluff lint`, see .sqlfluff) a placeholder of the
    setting's type stands in: linting checks the SQL's shape, not segflow's values. -#}
{% macro setting(name) -%}
  {%- set value = var(name, none) -%}
  {%- if value is not none -%}{{ return(value) }}{%- endif -%}
  {%- set placeholders = {
      'late_arrival_days': 1, 'churn_window_days': 1, 'churn_horizon_days': 1,
      'cancel_grace_days': 1, 'conversion_window_days': 1, 'ltv_horizon_days': 1,
      'churn_definition': 'inactivity', 'purchase_source': 'invoices',
      'activity_events': [], 'purchase_events': [],
  } -%}
  {%- if var('lint_only', false) and name in placeholders -%}
    {{ return(placeholders[name]) }}
  {%- endif -%}
  {{ exceptions.raise_compiler_error(
      "vars." ~ name ~ " is not set: segflow passes its settings to dbt; for a by-hand dbt run, "
      ~ "pass --vars \"$(segflow dbt-vars)\""
  ) }}
{%- endmacro %}
