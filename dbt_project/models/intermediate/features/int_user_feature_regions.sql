-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- depends_on: {{ ref('int_sessions') }}
-- depends_on: {{ ref('int_user_feature_history') }}
-- depends_on: {{ ref('int_user_revenue_events') }}
-- depends_on: {{ ref('stg_events__events') }}
-- depends_on: {{ source('raw', 'billing_invoices') }}
-- depends_on: {{ source('raw', 'crm_contacts') }}
{{ config(materialized='ephemeral') }}
-- Per known user, the snapshot days fct_user_features (re)builds in this run:
--   first_date:   the user's first day (activity, signup or first CRM version);
--   region_start: first snapshot day rebuilt. A full build: first_date. A roll-forward:
--                 min(reprocess_from, the user's cut) (macros/session_cuts.sql: late events
--                 and stitched anonymous history move the cut back) for a user whose history
--                 in the late-arrival window changed in this run (macros/feature_changes.sql;
--                 on a re-run or backfill: every user with activity, revenue or a CRM version
--                 starting or ending in it); for any other user, whose stored rows cannot have
--                 changed, the first day after the stored ones (usually only the new day);
--   dense_start:  first rebuilt day that can have a row (not before first_date);
--   grid_start:   first day the rolling windows read (feature_lookback_days before the
--                 region); all-time totals before it come from int_user_feature_prior_totals.
{%- set daily_rel = ref('int_user_activity_daily') -%}
{%- set contacts_rel = ref('stg_crm__contact_snapshots') -%}
{%- set lookback = feature_lookback_days() | int -%}
{#- looked up once (each reprocess_from() reads the run window) -#}
{%- set reprocess_start = reprocess_from() if features_incremental() else none %}

with
{% if features_incremental() %}
stitched_cuts as ({{ stitched_cuts_cte() }}),
cuts as ({{ user_reprocess_cuts(ref('int_sessions')) }}),

-- users whose stored days in the late-arrival window may change: on a run that starts the
-- day after the newest stored one, those whose history there changed
-- (macros/feature_changes.sql); on any other run, every user with data dated in the window
window_users as (
    {% if features_changed_only() -%}
    {{ users_with_changed_history() }}
    {%- else -%}
    select user_id from {{ daily_rel }}
    where activity_date >= {{ reprocess_start }}
    union
    select user_id from {{ ref('int_user_revenue_events') }}
    where paid_date >= {{ reprocess_start }}
    union
    select user_id from {{ contacts_rel }}
    where valid_from_date >= {{ reprocess_start }} or valid_to_date >= {{ reprocess_start }}
    {%- endif %}
),
{% endif %}

user_first as (
    select
        firsts.user_id,
        min(firsts.first_date) as first_date
    from (
        {% if features_incremental() -%}
        -- the days before feature_history_start() summed once (int_user_feature_history)
        select
            user_id,
            first_date
        from {{ ref('int_user_feature_history') }}
        union all
        select
            user_id,
            min(activity_date) as first_date
        from {{ daily_rel }}
        where activity_date >= {{ feature_history_start() }}
        group by user_id
        {%- else -%}
        select
            user_id,
            min(activity_date) as first_date
        from {{ daily_rel }}
        group by user_id
        {%- endif %}
        union all
        select
            user_id,
            min(
                case when signup_date < valid_from_date then signup_date else valid_from_date end
            ) as first_date
        from {{ contacts_rel }}
        group by user_id
    ) as firsts
    group by firsts.user_id
),

user_region as (
    select
        user_first.user_id,
        user_first.first_date,
        {% if features_incremental() %}
        case
            when cuts.cut_date < {{ reprocess_start }} then cuts.cut_date
            when window_users.user_id is not null then {{ reprocess_start }}
            else {{ features_next_day() }}
        end
        {% else %}
        user_first.first_date
        {% endif %} as region_start
    from user_first
    {% if features_incremental() %}
    left join cuts on cuts.user_id = user_first.user_id
    left join window_users on window_users.user_id = user_first.user_id
    {% endif %}
)

-- dates, not timestamps (dbt.dateadd's type): compared with the date columns row by row
select
    user_id,
    first_date,
    cast(region_start as date) as region_start,
    cast(greatest(first_date, region_start) as date) as dense_start,
    cast(greatest(
        first_date, {{ dbt.dateadd('day', -lookback, 'region_start') }}
    ) as date) as grid_start
from user_region
