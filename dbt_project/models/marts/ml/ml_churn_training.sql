-- depends_on: {{ ref('fct_user_features') }}
-- Churn training set: fct_user_features at weekly snapshots (Mondays) for the churn population
-- of vars.churn_definition (macro churn_population: inactivity = every customer ever active,
-- however long quiet; cancellation = customers not cancelled at the snapshot), with
-- churned_next_window = the churn outcome over (snapshot, snapshot + churn_horizon_days] (macro
-- churn_outcome); the name carries no horizon (contracts/models.py label). Only snapshots
-- whose whole horizon lies inside the data.
select
    {{ feature_columns("f") }},
    f.churned_next_window
from {{ ref('ml_label_windows') }} as f
where {{ churn_population('f.is_churned', 'f.active_days_total') }} and f.churn_window_covered
