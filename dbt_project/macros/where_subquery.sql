{#
  A test's `where` (fixed at parse time) with the run window as literals (run_window_literals):
  the tests of incremental models check only the rows a run wrote, and on a literal bound
  DuckDB skips the older row groups instead of reading the whole table.
#}
{% macro default__get_where_subquery(relation) -%}
  {%- set where = config.get('where', '') -%}
  {%- if where -%}
    {%- set filtered -%}
      (select * from {{ relation }} where {{ run_window_literals(where) }}) dbt_subquery
    {%- endset -%}
    {%- do return(filtered) -%}
  {%- else -%}
    {%- do return(relation) -%}
  {%- endif -%}
{%- endmacro %}
