-- depends_on: {{ ref('fct_user_features') }}
-- Churn training set: fct_user_features at weekly snapshots (Mondays) for customers NOT churned
-- at the snapshot under vars.churn_definition, with churned_28d = the customer becomes churned
-- (same definition) within (snapshot, snapshot + churn_horizon_days]. The column keeps its
-- contract name whatever the horizon. Only snapshots whose whole horizon lies inside the data.
select
    {{ feature_columns("f") }},
    f.churned_next_window as churned_28d
from {{ ref('ml_label_windows') }} as f
where not f.is_churned and f.churn_window_covered
