{#
  fct_user_features is built from ephemeral int_ models (models/intermediate/features/). An
  ephemeral model's own is_incremental() is always false, so they ask whether the mart they
  feed is being built incrementally: the same test dbt's is_incremental() makes on the mart.
#}
{% macro features_incremental() -%}
  {%- if not execute or var('lint_only', false) -%}{{ return(false) }}{%- endif -%}
  {%- set relation = adapter.get_relation(
      database=target.database, schema=target.schema, identifier='fct_user_features') -%}
  {{ return(relation is not none and relation.type == 'table' and not flags.FULL_REFRESH) }}
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
