-- Segment KPIs per segment_date x segment (a user counts in every segment they are tagged with):
-- users; avg_session_minutes (28-day average session length); onboarding_completion (mean share
-- of milestones reached); conversion_to_premium = share of free/trial members who moved to a
-- paid plan within conversion_window_days (null while the window is not yet observable);
-- churn_rate = share of the churn population's members with the churn outcome over the next
-- churn_horizon_days (the model's label: macros churn_population / churn_outcome) when
-- observable (churn_rate_source 'observed'), otherwise the mean
-- churn_probability from user_scores ('predicted'); avg_ltv_pred from user_scores.
-- Means are exact (decimal sums, see segflow_exact_numeric) so they do not depend on row order.
{{ segment_mart_config(['segment_date', 'segment'], sparse=true) }}
with members as (
    select * from {{ ref('int_segment_members') }}
),

kpis as (
    select
        segment_date,
        segment,
        count(distinct user_id) as users,
        {{ exact_avg('avg_session_minutes_28d') }} as avg_session_minutes,
        {{ exact_avg('onboarding_completion') }} as onboarding_completion,
        {{ exact_avg('case when converted_next then 1 when not converted_next then 0 end') }}
            as conversion_to_premium,
        count(converted_next) as conversion_observed_users,
        {{ exact_avg('case when churned_next then 1 when not churned_next then 0 end') }}
            as observed_churn_rate,
        count(churned_next) as churn_observed_users,
        {{ exact_avg('churn_probability') }} as avg_churn_probability,
        {{ exact_avg('ltv_pred') }} as avg_ltv_pred
    from members
    group by segment_date, segment
)

select
    segment_date,
    segment,
    cast(users as {{ dbt.type_int() }}) as users,
    cast(avg_session_minutes as {{ segflow_double() }}) as avg_session_minutes,
    cast(onboarding_completion as {{ segflow_double() }}) as onboarding_completion,
    cast(conversion_to_premium as {{ segflow_double() }}) as conversion_to_premium,
    cast(conversion_observed_users as {{ dbt.type_int() }}) as conversion_observed_users,
    cast(
        case
            when churn_observed_users > 0 then observed_churn_rate else avg_churn_probability
        end as {{ segflow_double() }}
    ) as churn_rate,
    case
        when churn_observed_users > 0 then 'observed'
        when avg_churn_probability is not null then 'predicted'
    end as churn_rate_source,
    cast(avg_ltv_pred as {{ segflow_double() }}) as avg_ltv_pred
from kpis
