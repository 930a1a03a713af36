{#- Custom typed CRM attributes (sources.yml `attributes:`, contracts/attributes.py), passed by
    segflow as var `custom_attributes`: a list of {name, type, column}. -#}

{#- sqlfluff's templater passes vars as text (`[]`): parsed back as JSON. -#}
{% macro custom_attributes() -%}
  {%- set declared = var('custom_attributes', []) -%}
  {%- if declared is string -%}{%- set declared = fromjson(declared) -%}{%- endif -%}
  {{ return(declared) }}
{%- endmacro %}

{#- The text of key `key` of a JSON object stored as text (null when absent). -#}
{% macro json_text(expr, key) -%}
  {{ return(adapter.dispatch('json_text', 'segflow')(expr, key)) }}
{%- endmacro %}
{% macro default__json_text(expr, key) -%}
  json_extract_string({{ expr }}, '$.{{ key }}')
{%- endmacro %}
{% macro spark__json_text(expr, key) -%}
  get_json_object({{ expr }}, '$.{{ key }}')
{%- endmacro %}

{#- An attribute's typed value from the raw JSON object: date, double or trimmed text; a value
    that does not parse as its type is null (try_cast: DuckDB, Spark 3.2+). -#}
{% macro custom_attribute_value(json_expr, attribute) -%}
  {%- set text = "nullif(trim(" ~ json_text(json_expr, attribute.name) ~ "), '')" -%}
  {%- if attribute.type == 'date' -%}
    try_cast({{ text }} as date)
  {%- elif attribute.type == 'number' -%}
    try_cast({{ text }} as {{ segflow_double() }})
  {%- elif attribute.type == 'category' -%}
    {{ text }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("vars.custom_attributes: attribute '" ~ attribute.name ~ "' has type '" ~ attribute.type ~ "': expected date, number or category") }}
  {%- endif -%}
{%- endmacro %}

{#- The feature an attribute becomes at `day_expr`: a date -> whole years elapsed (an age). -#}
{% macro custom_attribute_feature(value_expr, attribute, day_expr) -%}
  {%- if attribute.type == 'date' -%}
    cast(
        extract(year from {{ day_expr }}) - extract(year from {{ value_expr }})
        - case
            when extract(month from {{ day_expr }}) * 100 + extract(day from {{ day_expr }})
                < extract(month from {{ value_expr }}) * 100 + extract(day from {{ value_expr }})
                then 1
            else 0
        end
        as integer
    )
  {%- else -%}
    {{ value_expr }}
  {%- endif -%}
{%- endmacro %}
