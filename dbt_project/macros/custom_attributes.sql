{#- Custom typed CRM attributes (sources.yml `attributes:`, contracts/attributes.py), passed by
    segflow as var `custom_attributes`: a list of {name, type, column}. -#}

{#- sqlfluff's templater passes vars as text (`[]`): parsed back as JSON. -#}
{% macro custom_attributes() -%}
  {%- set declared = var('custom_attributes', []) -%}
  {%- if declared is string -%}{%- set declared = fromjson(declared) -%}{%- endif -%}
  {{ return(declared) }}
{%- endmacro %}

{#- The text of key `key` of a JSON object stored as text (null when absent, or when the text is
    not JSON: the load records such a value in raw.quarantine). -#}
{% macro json_text(expr, key) -%}
  {{ return(adapter.dispatch('json_text', 'segflow')(expr, key)) }}
{%- endmacro %}
{% macro default__json_text(expr, key) -%}
  json_extract_string(case when json_valid({{ expr }}) then {{ expr }} end, '$.{{ key }}')
{%- endmacro %}
{% macro spark__json_text(expr, key) -%}
  get_json_object({{ expr }}, '$.{{ key }}')
{%- endmacro %}

{#- An attribute's typed value from the raw JSON object: cast to the type the var names
    (`cast`, contracts/attributes.py PARSED_AS) or trimmed text for a category. A value that does
    not parse is null here; the load counts it and records it in raw.quarantine
    (orchestration/sources/attribute_values.py, same cast). try_cast: DuckDB, Spark 3.2+. -#}
{% macro custom_attribute_value(json_expr, attribute) -%}
  {%- set text = "nullif(trim(" ~ json_text(json_expr, attribute.name) ~ "), '')" -%}
  {%- if attribute.type not in ('date', 'number', 'category') -%}
    {{ exceptions.raise_compiler_error("vars.custom_attributes: attribute '" ~ attribute.name ~ "' has type '" ~ attribute.type ~ "': expected date, number or category") }}
  {%- elif attribute.cast -%}
    try_cast({{ text }} as {{ attribute.cast }})
  {%- else -%}
    {{ text }}
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

