{{ config(materialized='ephemeral') }}
-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- depends_on: {{ ref('int_sessions') }}
-- One row per user per segment_date per segment tag (user_segments.segments unnested), with
-- the user's features that day and the observed outcomes after it (from ml_label_windows for
-- Mondays is not enough: segments are daily, so outcomes are computed here over daily data).
-- churned_next is the churn label's outcome and population (macros churn_outcome and
-- churn_population, vars.churn_definition over churn_horizon_days): the same churn as the
-- model's, null for members outside the population or while the horizon is not observable.
-- Features, outcomes and scores are joined per user-day, then the tags are unnested: a user
-- in three segments is looked up once, not three times.
{%- set churn_days = setting('churn_horizon_days') | int -%}
{%- set conversion_days = setting('conversion_window_days') | int -%}
{%- set plan = var('tracking_plan') -%}
-- Incremental fct_segment_kpis: only the segment dates this run can change (segment_dates_from,
-- segment_dates_changed).
{%- set incremental = mart_incremental('fct_segment_kpis') -%}
{%- set floor_date = segment_dates_floor(incremental) -%}
{%- set lookahead = [churn_days, conversion_days] -%}
{%- set since = segment_dates_from(incremental, lookahead | max, floor_date) %}
with data_end as (
    {{ data_end_select(ref('int_user_activity_daily'), prior_to=floor_date) }}
),

member_days as (
    select
        s.user_id,
        s.segment_date,
        s.segments,
        f.avg_session_minutes_28d,
        f.onboarding_completion,
        f.is_paid,
        f.is_active_28d,
        f.is_churned,
        f.active_days_total,
        f.plan,
        {{ dbt.dateadd('day', churn_days, 's.segment_date') }}
        <= data_end.data_end_date as churn_window_covered,
        {{ dbt.dateadd('day', conversion_days, 's.segment_date') }}
        <= data_end.data_end_date as conversion_window_covered
    from {{ source('segflow', 'user_segments') }} as s
    cross join data_end
    left join {{ ref('fct_user_features') }} as f
        on
            s.user_id = f.user_id
            and s.segment_date = f.snapshot_date
            and f.snapshot_date >= {{ since }}
    where
        s.segment_date >= {{ since }}
        and {{ segment_dates_changed('s.segment_date', floor_date, lookahead, 'data_end') }}
),

-- Outcome windows only for the member days whose window is observable (the others' outcomes
-- are null): a daily run rebuilds ~8 segment dates, of which ~4 have a covered window.
conversion_anchors as (
    select
        user_id,
        segment_date
    from member_days
    where conversion_window_covered and not is_paid
),

churn_anchors as (
    select
        user_id,
        segment_date
    from member_days
    where churn_window_covered
),

future as (
    {{ forward_window(
        'conversion_anchors', 'segment_date', ref('int_user_activity_daily'), 'activity_date',
        conversion_days, ['sum(e.upgrade_events) as upgrades_next'], anchors_from=since,
    ) }}
),

future_state as (
    {{ forward_window(
        'churn_anchors', 'segment_date', ref('fct_user_features'), 'snapshot_date', churn_days,
        [
            'max(case when e.is_churned then 1 else 0 end) as churns_within_horizon',
            'max(e.active_days_total) as active_days_total_at_horizon',
        ],
        anchors_from=since,
    ) }}
),

future_paid as (
    {{ forward_window(
        'conversion_anchors', 'segment_date', ref('stg_crm__contact_snapshots'), 'valid_from_date',
        conversion_days, ['count(*) as paid_versions'],
        event_filter="e.plan in " ~ sql_list(plan['paid_plans']), anchors_from=since,
    ) }}
),

scores as (
    select
        user_id,
        score_date,
        churn_probability,
        ltv_pred
    from {{ source('segflow', 'user_scores') }}
    where score_date >= {{ since }}
),

user_days as (
    select
        member_days.*,
        scores.churn_probability,
        scores.ltv_pred,
        case
            when
                member_days.churn_window_covered
                and {{ churn_population(
                    'member_days.is_churned', 'member_days.active_days_total',
                ) }}
                then
                    {{ churn_outcome(
                        'future_state.churns_within_horizon',
                        'member_days.active_days_total',
                        'future_state.active_days_total_at_horizon',
                    ) }}
        end as churned_next,
        case
            when member_days.conversion_window_covered and not member_days.is_paid
                then
                    coalesce(future.upgrades_next, 0) > 0
                    or coalesce(future_paid.paid_versions, 0) > 0
        end as converted_next
    from member_days
    left join
        future
        on member_days.user_id = future.user_id and member_days.segment_date = future.segment_date
    left join
        future_state
        on
            member_days.user_id = future_state.user_id
            and member_days.segment_date = future_state.segment_date
    left join
        future_paid
        on
            member_days.user_id = future_paid.user_id
            and member_days.segment_date = future_paid.segment_date
    left join
        scores
        on member_days.user_id = scores.user_id and member_days.segment_date = scores.score_date
),

tagged as (
    select
        user_id,
        segment_date,
        {{ unnest_array('segments') }} as segment,
        avg_session_minutes_28d,
        onboarding_completion,
        is_paid,
        is_active_28d,
        is_churned,
        active_days_total,
        plan,
        churn_window_covered,
        conversion_window_covered,
        churn_probability,
        ltv_pred,
        churned_next,
        converted_next
    from user_days
)

select * from tagged
where segment is not null
