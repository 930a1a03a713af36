{#
  Custom incremental strategy `replace_where` (the name and idea follow dbt-databricks):
  delete every target row matching the model's `incremental_predicates` (AND-ed), then insert
  the freshly built rows. Unlike delete+insert by unique key, rows that must disappear (a session
  merged into an earlier one after a late event) are removed too, so an incremental run gives
  exactly the table a full refresh gives. In predicates, `DBT_INTERNAL_DEST` is the target table
  and `DBT_INTERNAL_SOURCE` the freshly built rows.
  Optional config `narrow_predicates`: used instead when the run processes only the new raw
  partitions (macros/consumed_loads.sql); NEW_PARTITIONS in them becomes the list of those days,
  FIRST_NEW_PARTITION the first of them.
#}
{% macro get_incremental_replace_where_sql(arg_dict) %}
  {%- set target = arg_dict["target_relation"] -%}
  {%- set source = arg_dict["temp_relation"] -%}
  {%- set predicates = arg_dict["incremental_predicates"] or [] -%}
  {%- if predicates is string -%}{%- set predicates = [predicates] -%}{%- endif -%}
  {%- if predicates | length == 0 -%}
    {{ exceptions.raise_compiler_error("replace_where needs incremental_predicates (model " ~ target ~ ")") }}
  {%- endif -%}
  {%- set narrow = config.get('narrow_predicates') -%}
  {%- if narrow -%}
    {%- set changes = raw_event_changes(target.identifier) -%}
    {%- if changes is not none -%}
      {%- set predicates = [] -%}
      {%- for p in ([narrow] if narrow is string else narrow) -%}
        {%- do predicates.append(p | replace("NEW_PARTITIONS", date_list(changes))
            | replace("FIRST_NEW_PARTITION", "cast('" ~ (changes | min) ~ "' as date)")) -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endif -%}
  {%- set predicates = predicates + replace_where_floor(source) -%}
  {%- set dest_cols_csv = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
  delete from {{ target }}
  where {% for p in predicates %}({{ run_window_literals(p | replace("DBT_INTERNAL_DEST", target | string) | replace("DBT_INTERNAL_SOURCE", source | string)) }}){{ " and " if not loop.last }}{% endfor %};
  insert into {{ target }} ({{ dest_cols_csv }})
  select {{ dest_cols_csv }} from {{ source }}
{% endmacro %}

{#
  Optional model config `replace_where_floor`: {column, type, expression}, an aggregate over
  the fresh rows no later than any target row the predicates match (e.g. min of the rebuilt
  column). Its value is added to the delete as `column >= <literal>`: the predicates' per-user
  bounds sit behind a subquery, so without it the delete reads the whole table; with it the
  scan skips the row groups before the floor. Returns the extra predicates (none if unset or
  the aggregate is null).
#}
{% macro replace_where_floor(source) %}
  {%- set floor = config.get('replace_where_floor') -%}
  {%- if not floor -%}{{ return([]) }}{%- endif -%}
  {%- set value = run_query('select ' ~ floor['expression'] ~ ' as floor_value from '
      ~ source).columns[0].values()[0] -%}
  {%- if value is none -%}{{ return([]) }}{%- endif -%}
  {{ return([floor['column'] ~ " >= cast('" ~ value ~ "' as " ~ floor['type'] ~ ")"]) }}
{% endmacro %}
