-- depends_on: {{ ref('fct_user_features') }}
-- Conversion training set: free/trial users (not on a paid plan; churned ones included: they
-- are scored too) at weekly snapshots, with
-- converted_next_window = an upgrade event, a paid-plan CRM version or a paid invoice in
-- (snapshot, snapshot + conversion_window_days]. Only snapshots whose window is covered.
select
    {{ feature_columns("f") }},
    f.converted_next_window
from {{ ref('ml_label_windows') }} as f
where not f.is_paid and f.conversion_window_covered
