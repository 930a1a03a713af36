-- depends_on: {{ ref('fct_user_features') }}
-- Churn training set: fct_user_features at weekly snapshots (Mondays) for users active in the
-- 28 days before, with churned_28d = no activity in (snapshot, snapshot + churn_window_days] or
-- a cancellation in it. Only snapshots whose whole label window lies inside the data.
select
    {{ feature_columns("f") }},
    f.churned_next_window as churned_28d
from {{ ref('ml_label_windows') }} as f
where f.is_active_28d and f.churn_window_covered
