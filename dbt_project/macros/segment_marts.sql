{#
  The marts built after segments (fct_segment_kpis, fct_onboarding_funnel_by_segment) read
  user_segments joined with the features of each segment_date, and fct_segment_kpis also the
  outcomes up to `lookahead_days` after it. A run can change only the segment dates from the
  features' floor (reprocess_floor_ts: the late-arrival window, or an earlier per-user cut)
  less that lookahead (an outcome window that became observable or saw late data); earlier
  dates keep their rows. Returns that first date for an incremental build, the run window's
  default start for a full one (every date): the models filter on it unconditionally. A daily
  run reads about late_arrival_days + lookahead_days of segment history, not all of it.
#}
{% macro segment_dates_from(incremental, lookahead_days=0) -%}
  {%- if not incremental -%}{{ return("cast('1970-01-01' as date)") }}{%- endif -%}
  {%- set floor_date = 'cast(' ~ reprocess_floor_ts(ref('int_sessions')) ~ ' as date)' -%}
  {{ return(dbt.dateadd('day', -1 * lookahead_days | int, floor_date)) }}
{%- endmacro %}

{# Incremental config of an after-segments mart: its segment dates from the first rebuilt one. #}
{% macro segment_mart_config(unique_key) -%}
  {{ config(
      materialized='incremental',
      incremental_strategy='replace_where',
      unique_key=unique_key,
      replace_where_floor={
          'column': 'segment_date', 'type': 'date', 'expression': 'min(segment_date)'
      },
      incremental_predicates=[
          'segment_date >= (select min(segment_date) from DBT_INTERNAL_SOURCE)'
      ],
  ) }}
{%- endmacro %}
