-- depends_on: {{ ref('fct_user_features') }}
-- LTV training set: every customer (churned ones included: they are scored too) at weekly
-- snapshots + ltv_future = revenue (USD, paid invoices) in (snapshot, snapshot +
-- ltv_horizon_days] (setting SEGFLOW_LTV_HORIZON_DAYS). Only snapshots whose horizon lies
-- inside the data.
select
    {{ feature_columns("f") }},
    cast(f.revenue_next_window as {{ segflow_double() }}) as ltv_future
from {{ ref('ml_label_windows') }} as f
where f.ltv_window_covered
