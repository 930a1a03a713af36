-- depends_on: {{ ref('fct_user_features') }}
-- LTV training set: every customer (churned ones included: they are scored too) at weekly
-- snapshots + revenue (USD, paid invoices) in
-- (snapshot, snapshot + h] for each horizon of vars.ltv_horizons_days; a horizon's label is
-- null when the data does not cover it. Only snapshots whose first (shortest) horizon is covered.
{%- set horizons = var('ltv_horizons_days') %}
select
    {{ feature_columns("f") }}
    {%- for h in horizons %},
    cast(
        case when f.ltv_{{ h }}d_covered then f.revenue_next_{{ h }}d_observed end
        as {{ segflow_double() }}
    ) as revenue_next_{{ h }}d{% endfor %}
from {{ ref('ml_label_windows') }} as f
where f.ltv_{{ horizons | min }}d_covered
