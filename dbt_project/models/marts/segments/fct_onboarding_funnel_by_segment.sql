-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_events_stitched') }}
-- depends_on: {{ ref('int_sessions') }}
-- Onboarding funnel per segment_date x segment x milestone (order of vars.tracking_plan):
-- members, members who had reached the milestone by segment_date (from fct_user_features),
-- share, conversion from the previous step and drop-off. Sequential, as fct_onboarding_funnel:
-- users_reached counts members who had reached steps 1..k; users_reached_any_order counts
-- every member who had reached the milestone. The rates are macros/funnel.sql's.
{%- set milestones = var('tracking_plan')['milestones'] -%}
{{ segment_mart_config(['segment_date', 'segment', 'milestone']) }}
{%- set since = segment_dates_from(is_incremental()) %}
with members as (
    select
        {% for m in milestones -%}
        coalesce(f.reached_{{ m['name'] }}, false) as reached_{{ m['name'] }},
        {% endfor -%}
        tags.user_id,
        tags.segment_date,
        tags.segment
    from (
        select
            user_id,
            segment_date,
            {{ unnest_array('segments') }} as segment
        from {{ source('segflow', 'user_segments') }}
        where segment_date >= {{ since }}
    ) as tags
    left join {{ ref('fct_user_features') }} as f
        on
            tags.user_id = f.user_id
            and tags.segment_date = f.snapshot_date
            and f.snapshot_date >= {{ since }}
    where tags.segment is not null
),

steps as (
    {% for m in milestones %}
    select
        segment_date,
        segment,
        {{ loop.index }} as step_number,
        '{{ m['name'] }}' as milestone,
        count(*) as users_in_segment,
        sum(
            case
                when {{ funnel_reached_through(milestones, loop.index, 'reached_') }}
                    then 1
                else 0
            end
        ) as users_reached,
        sum(case when reached_{{ m['name'] }} then 1 else 0 end) as users_reached_any_order
    from members
    group by segment_date, segment
    {{ "union all" if not loop.last }}
    {% endfor %}
),

with_previous as (
    select
        steps.*,
        {{ funnel_previous_reached('steps.segment_date, steps.segment') }}
            as previous_reached
    from steps
)

select
    segment_date,
    segment,
    cast(step_number as {{ dbt.type_int() }}) as step_number,
    milestone,
    cast(users_in_segment as {{ dbt.type_int() }}) as users_in_segment,
    cast(users_reached as {{ dbt.type_int() }}) as users_reached,
    cast(users_reached_any_order as {{ dbt.type_int() }}) as users_reached_any_order,
    {{ funnel_step_rates('users_in_segment') }}
from with_previous
