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
{% macro segment_dates_from(incremental, lookahead_days=0, floor_date=none) -%}
  {%- if not incremental -%}{{ return("cast('1970-01-01' as date)") }}{%- endif -%}
  {%- set floor_date = floor_date or segment_dates_floor(incremental) -%}
  {{ return(dbt.dateadd('day', -1 * lookahead_days | int, floor_date)) }}
{%- endmacro %}

{# The features' floor as a date: the first segment date whose own inputs a run can change. #}
{% macro segment_dates_floor(incremental) -%}
  {%- if not incremental -%}{{ return("cast('1970-01-01' as date)") }}{%- endif -%}
  {{ return('cast(' ~ reprocess_floor_ts(ref('int_sessions')) ~ ' as date)') }}
{%- endmacro %}

{#
  Of the segment dates from segment_dates_from, those a run can change, as a predicate on
  `date_expr`: every date from the floor (its members, features and scores), and an earlier
  date only when an outcome window (date, date + days] of `lookahead_days` is observable now
  (ends on or before `ends`.data_end_date) and ends after `ends`.prior_end_date, the last day
  with data before the floor: that window then holds a day the run may change, or it was not
  observable at the previous run (whose data ended on or after prior_end_date). Any other date
  keeps its row: its inputs are before the floor and its outcome windows are unchanged (wholly
  before the floor, or still not observable). A daily run: the ~4 new days and, per distinct
  lookahead, the ~4 dates whose window reaches them, instead of every date of the lookahead.
#}
{% macro segment_dates_changed(date_expr, floor_date, lookahead_days, ends) -%}
  ({{ date_expr }} >= {{ floor_date }}
  {%- for days in lookahead_days | unique %}
    or (
        {{ dbt.dateadd('day', days, date_expr) }} <= {{ ends }}.data_end_date
        and coalesce({{ dbt.dateadd('day', days, date_expr) }} > {{ ends }}.prior_end_date, true)
    )
  {%- endfor %})
{%- endmacro %}

{#
  Incremental config of an after-segments mart: its segment dates from the first rebuilt one.
  `sparse`: the model rebuilds only some of those dates (segment_dates_changed); the others
  keep their rows. The delete then takes the dates the new rows have, and every date from the
  late-arrival window's start (a date there whose members all left has no new row). An
  earlier date without new rows keeps its stored ones: its members did not change.
#}
{% macro segment_mart_config(unique_key, sparse=false) -%}
  {%- set predicates = ['segment_date >= (select min(segment_date) from DBT_INTERNAL_SOURCE)'] -%}
  {%- if sparse -%}
    {%- do predicates.append(
        'segment_date in (select segment_date from DBT_INTERNAL_SOURCE) or segment_date >= '
        ~ '(select min_date from ' ~ run_window_relation() | trim ~ ') - '
        ~ setting('late_arrival_days') | int) -%}
  {%- endif -%}
  {{ config(
      materialized='incremental',
      incremental_strategy='replace_where',
      unique_key=unique_key,
      replace_where_floor={
          'column': 'segment_date', 'type': 'date', 'expression': 'min(segment_date)'
      },
      incremental_predicates=predicates,
  ) }}
{%- endmacro %}
