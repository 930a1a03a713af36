{#
  fct_user_features is built from ephemeral int_ models (models/intermediate/features/). An
  ephemeral model's own is_incremental() is always false, so they ask whether the mart they
  feed is being built incrementally (mart_incremental, macros/window.sql).
#}
{% macro features_incremental() -%}
  {{ return(mart_incremental('fct_user_features')) }}
{%- endmacro %}

{# Days before a snapshot the rolling windows read: 28-day sums (and 7 days 7..13 back). #}
{% macro feature_lookback_days() -%}27{%- endmacro %}

{# Rolling frame over a user's days numbered by `day_number`: the last n days, today included.
   A RANGE frame, so days without rows (the sparse look-back of a roll-forward) count as 0. #}
{% macro last_n_days(n, first_back=0) -%}
  over (partition by user_id order by day_number
        range between {{ n - 1 + first_back }} preceding and
        {{ first_back ~ ' preceding' if first_back else 'current row' }})
{%- endmacro %}

{% macro running() -%}
  over (partition by user_id order by day_number rows between unbounded preceding and current row)
{%- endmacro %}

{#
  The per-user daily values fct_user_features rolls up, once for both ways of computing them:
  (name, aggregate, expression over a day's row, days, days back). days = none: running over
  every day so far (from grid_start; int_user_feature_prior_totals holds the days before).
  `active_days_28d` = sum(active) over the 28 days up to the snapshot; `*_prev_7d` = the 7
  days ending 7 days back.
#}
{% macro feature_rollups() -%}
  {%- set plan = var('tracking_plan') -%}
  {%- set specs = [
      ('active_days_7d', 'sum', 'active', 7, 0),
      ('active_days_28d', 'sum', 'active', 28, 0),
      ('events_7d', 'sum', 'events', 7, 0),
      ('events_28d', 'sum', 'events', 28, 0),
      ('events_prev_7d', 'sum', 'events', 7, 7),
      ('sessions_7d', 'sum', 'sessions', 7, 0),
      ('sessions_28d', 'sum', 'sessions', 28, 0),
      ('active_minutes_28d', 'exact_sum', 'active_minutes', 28, 0),
      ('feature_depth_28d', 'sum', 'core_feature_events', 28, 0),
  ] -%}
  {%- for feature in plan['core_features'] -%}
    {%- set column = 'feature_' ~ slug(feature) -%}
    {%- do specs.append((column ~ '_28d', 'sum', column ~ '_events', 28, 0)) -%}
    {%- do specs.append((column ~ '_7d', 'sum', column ~ '_events', 7, 0)) -%}
    {%- do specs.append((column ~ '_prev_7d', 'sum', column ~ '_events', 7, 7)) -%}
  {%- endfor -%}
  {%- do specs.extend([
      ('active_days_running', 'sum', 'active', none, 0),
      ('first_active_date', 'min', 'case when active = 1 then snapshot_date end', none, 0),
      ('last_cancel_date', 'max', 'case when cancel_events > 0 then snapshot_date end', none, 0),
      ('purchases_running', 'sum', 'purchases', none, 0),
      ('first_purchase_date', 'min', 'case when purchases > 0 then snapshot_date end', none, 0),
      ('last_purchase_date', 'max', 'case when purchases > 0 then snapshot_date end', none, 0),
      ('paid_through_date', 'max', 'paid_through_date', none, 0),
      ('support_tickets_28d', 'sum', 'support_tickets', 28, 0),
      ('support_tickets_running', 'sum', 'support_tickets', none, 0),
  ]) -%}
  {%- for column in var('milestone_counters') -%}
    {%- do specs.append((column ~ '_running', 'sum', column, none, 0)) -%}
  {%- endfor -%}
  {%- for m in plan['milestones'] -%}
    {%- do specs.append(('first_date_' ~ m['name'], 'min',
        'case when first_' ~ m['name'] ~ ' = 1 then snapshot_date end', none, 0)) -%}
  {%- endfor -%}
  {%- do specs.extend([
      ('last_active_date', 'max', 'case when active = 1 then snapshot_date end', none, 0),
      ('revenue_running', 'exact_sum', 'revenue', none, 0),
  ]) -%}
  {{ return(specs) }}
{%- endmacro %}

{% macro rollup_call(agg, expr) -%}
  {{ exact_sum(expr) if agg == 'exact_sum' else agg ~ '(' ~ expr ~ ')' }}
{%- endmacro %}

{# A rollup as a window over the user's grid (a full build: every day of every user). #}
{% macro rollup_over_window(spec) -%}
  {%- set name, agg, expr, days, back = spec -%}
  {{ rollup_call(agg, expr) }} {{ running() if days is none else last_n_days(days, back) }}
{%- endmacro %}

{#
  A rollup as an aggregate over the (target day, data day) pairs of a roll-forward: each
  rebuilt day paired with the user's days with data from grid_start up to it. A sum over no
  day is 0, as on the grid (where the snapshot's own row is always in the frame; the prev-7d
  sums, null there for a user's first week, are read through coalesce(..., 0)).
#}
{% macro rollup_over_pairs(spec) -%}
  {%- set name, agg, expr, days, back = spec -%}
  {%- if days is not none -%}
    {%- set expr = 'case when day_number between target_day_number - ' ~ (days - 1 + back)
        ~ ' and target_day_number - ' ~ back ~ ' then ' ~ expr ~ ' end' -%}
  {%- endif -%}
  {%- if agg in ('sum', 'exact_sum') -%}
    coalesce({{ rollup_call(agg, expr) }}, 0)
  {%- else -%}
    {{ rollup_call(agg, expr) }}
  {%- endif -%}
{%- endmacro %}

{#
  Roll forward by pairs (aggregates, no windows) when this is an incremental run whose window
  starts at most vars.features_pairs_max_days before the newest data: each rebuilt day is
  paired with up to feature_lookback_days + (rebuilt days) days of a user's data. A backfill of
  an older window rebuilds its days with windows over the grid instead (pairs would grow with
  its square).
#}
{% macro features_roll_by_pairs() -%}
  {%- set max_days = var('features_pairs_max_days') | int -%}
  {%- if not features_incremental() -%}{{ return(false) }}{%- endif -%}
  {%- set sql = 'select ' ~ dbt.datediff(reprocess_from(),
      '(' ~ data_end_select(ref('int_user_activity_daily')) ~ ')', 'day') -%}
  {%- set days = run_query(sql).columns[0].values()[0] -%}
  {{ return(days is not none and days | int <= max_days) }}
{%- endmacro %}

{#
  A roll-forward's first day of the daily activity any rebuilt user's grid reads: the look-back
  before the earliest cut (reprocess_floor_ts), so every user's grid_start is on or after it.
  Activity before it is summed per user without a per-user bound (int_user_feature_history);
  a literal, so scans on either side of it skip the other row groups.
#}
{% macro feature_history_start() -%}
  cast({{ dbt.dateadd('day', -1 * (feature_lookback_days() | int),
      'cast(' ~ reprocess_floor_ts(ref('int_sessions')) ~ ' as date)') }} as date)
{%- endmacro %}

{#
  The all-time activity values before a user's grid (int_user_feature_prior_totals), as
  (name, aggregate over int_user_activity_daily rows, aggregate combining partial results):
  the history before feature_history_start() and the days from it to grid_start are summed
  apart and combined.
#}
{% macro prior_activity_totals() -%}
  {%- set specs = [
      ('last_active_date', 'max(case when activity_events > 0 then activity_date end)', 'max'),
      ('first_active_date', 'min(case when activity_events > 0 then activity_date end)', 'min'),
      ('active_days', 'sum(case when activity_events > 0 then 1 else 0 end)', 'sum'),
      ('last_cancel_date', 'max(case when cancel_events > 0 then activity_date end)', 'max'),
  ] -%}
  {%- for column, milestone in var('milestone_counters').items() -%}
    {%- do specs.append((column, 'sum(milestone_' ~ milestone ~ '_events)', 'sum')) -%}
  {%- endfor -%}
  {%- for m in var('tracking_plan')['milestones'] -%}
    {%- do specs.append(('first_date_' ~ m['name'],
        'min(case when first_' ~ m['name'] ~ ' then activity_date end)', 'min')) -%}
  {%- endfor -%}
  {%- do specs.append(('support_tickets', 'sum(support_tickets)', 'sum')) -%}
  {{ return(specs) }}
{%- endmacro %}

{#
  A grid day's values in int_user_feature_windows' `dense`, from its int_user_activity_daily
  row (`daily`) and its paid revenue (`revenue_daily`); a missing row counts as zero.
#}
{% macro feature_day_values() -%}
  case when coalesce(daily.activity_events, 0) > 0 then 1 else 0 end as active,
  coalesce(daily.events, 0) as events,
  coalesce(daily.sessions_started, 0) as sessions,
  coalesce(daily.active_minutes, 0.0) as active_minutes,
  coalesce(daily.core_feature_events, 0) as core_feature_events,
  {% for feature in var('tracking_plan')['core_features'] -%}
  coalesce(daily.feature_{{ slug(feature) }}_events, 0) as feature_{{ slug(feature) }}_events,
  {% endfor -%}
  coalesce(daily.support_tickets, 0) as support_tickets,
  coalesce(daily.cancel_events, 0) as cancel_events,
  coalesce(revenue_daily.purchases, 0) as purchases,
  revenue_daily.paid_through_date,
  {% for column, milestone in var('milestone_counters').items() -%}
  coalesce(daily.milestone_{{ milestone }}_events, 0) as {{ column }},
  {% endfor -%}
  {% for m in var('tracking_plan')['milestones'] -%}
  case when daily.first_{{ m['name'] }} then 1 else 0 end as first_{{ m['name'] }},
  {% endfor -%}
  coalesce(revenue_daily.revenue, 0.0) as revenue
{%- endmacro %}

{# Days since 1970-01-01: the order of the RANGE frames and of the roll-forward's pairs. #}
{% macro day_number(date_expr) -%}
  {{ dbt.datediff("cast('1970-01-01' as date)", date_expr, 'day') }}
{%- endmacro %}

{#
  The first snapshot day fct_user_features does not hold yet (the day after its newest), as a
  literal looked up when the model runs: a roll-forward rebuilds a user without data in the
  late-arrival window from there (int_user_feature_regions). An empty table: reprocess_from.
#}
{% macro features_next_day() -%}
  {%- set relation = adapter.get_relation(
      database=target.database, schema=target.schema, identifier='fct_user_features') -%}
  {%- set newest = run_query(
      'select max(snapshot_date) as newest_date from ' ~ relation).columns[0].values()[0] -%}
  {%- if newest is none -%}{{ return(reprocess_from()) }}{%- endif -%}
  {{ return(dbt.dateadd('day', 1, "cast('" ~ newest ~ "' as date)")) }}
{%- endmacro %}
