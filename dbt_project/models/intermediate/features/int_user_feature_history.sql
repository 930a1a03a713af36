-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_sessions') }}
{{ config(materialized='ephemeral') }}
-- A roll-forward's per-user summary of the daily activity before feature_history_start()
-- (macros/feature_region.sql: every rebuilt user's grid starts on or after it): the first day
-- and the all-time totals (prior_activity_totals), summed once without a per-user bound, so
-- the scan reads only the row groups before that day. int_user_feature_regions takes the first
-- day from it and int_user_feature_prior_totals the totals before the grid. Empty on a full
-- build (the grid starts at each user's first day).
{%- set bound = feature_history_start() if features_incremental() else none %}

select
    {% for name, aggregate, _ in prior_activity_totals() -%}
    {{ aggregate }} as {{ name }},
    {% endfor -%}
    min(activity_date) as first_date,
    user_id
from {{ ref('int_user_activity_daily') }}
where activity_date < {{ bound if bound else "cast('1970-01-01' as date)" }}
group by user_id
