-- Events attributed to a known user: their own user_id, or for anonymous events (pre-signup
-- page views, logged-out visits) the user their anonymous_id was identified as. Events of
-- anonymous_ids never identified stay out (they belong to no user).
-- Incremental: events from reprocess_from on, plus the whole anonymous history of
-- anonymous_ids first identified in this window.
{#- ref() inside config() resolves to this model at parse time; the map and the staged events
    live next to it. -#}
{%- set identity_map = (
    this.incorporate(path={"identifier": "int_identity_map"})
    if this is not none else "int_identity_map"
) -%}
{%- set staged_events = (
    this.incorporate(path={"identifier": "stg_events__events"})
    if this is not none else "stg_events__events"
) -%}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    unique_key='message_id',
    replace_where_floor={
        'column': 'event_at', 'type': dbt.type_timestamp(),
        'expression': 'least(min(event_at), ' ~ reprocess_from_ts() ~ ')'
    },
    incremental_predicates=[
        "event_at >= " ~ reprocess_from_ts()
        ~ " or (is_anonymous and anonymous_id in (select anonymous_id from "
        ~ identity_map ~ " where first_identified_at >= " ~ reprocess_from_ts() ~ "))"
    ],
    narrow_predicates=[
        "message_id in (select message_id from " ~ staged_events
        ~ " where partition_date >= FIRST_NEW_PARTITION and partition_date in NEW_PARTITIONS)"
        ~ " or (is_anonymous and anonymous_id in (select anonymous_id from "
        ~ identity_map ~ " where first_identified_at >= " ~ reprocess_from_ts() ~ "))"
    ],
    post_hook="{{ consumed_loads_hook() }}",
) }}
{#- Narrow (macros/consumed_loads.sql): only the events of the new partitions are new or
    replaced (de-duplication keeps one copy per message_id; a replaced copy has its id); the
    stored rows of the window keep their user unless their anonymous id was first identified
    in the window, whose events are rebuilt as in a wide run. -#}
{%- set new_partitions = raw_event_changes(this.identifier) if is_incremental() else none %}

with events as (
    select *
    from {{ ref('stg_events__events') }}
    {% if new_partitions is not none %}
    where {{ in_new_partitions('partition_date', new_partitions) }}
    union all
    select *
    from {{ ref('stg_events__events') }}
    where
        user_id is null
        and partition_date not in {{ date_list(new_partitions) }}
        and event_at >= {{ anonymous_history_from_ts() }}
        and anonymous_id in (
            select anonymous_id from {{ ref('int_identity_map') }}
            where first_identified_at >= {{ reprocess_from_ts() }}
        )
    {% elif is_incremental() %}
    -- the rows the final filter keeps, in two scans the engine can bound: the window by time,
    -- the older anonymous events of ids first identified in it by user_id is null
    where event_at >= {{ reprocess_from_ts() }}
    union all
    select *
    from {{ ref('stg_events__events') }}
    where
        user_id is null
        and event_at < {{ reprocess_from_ts() }}
        and event_at >= {{ anonymous_history_from_ts() }}
        and anonymous_id in (
            select anonymous_id from {{ ref('int_identity_map') }}
            where first_identified_at >= {{ reprocess_from_ts() }}
        )
    {% endif %}
),

resolved as (
    select
        events.message_id,
        events.anonymous_id,
        events.event_type,
        events.event_name,
        events.event_at,
        events.event_date,
        events.received_at,
        coalesce(events.user_id, id_map.user_id) as stitched_user_id,
        events.user_id is null as is_anonymous
    from events
    left join {{ ref('int_identity_map') }} as id_map
        on events.user_id is null and events.anonymous_id = id_map.anonymous_id
)

-- The contract's column order (the select above lists plain columns first, as ST06 asks).
select
    message_id,
    stitched_user_id,
    is_anonymous,
    anonymous_id,
    event_type,
    event_name,
    event_at,
    event_date,
    received_at
from resolved
where stitched_user_id is not null
{% if is_incremental() and new_partitions is none %}
  and (
    event_at >= {{ reprocess_from_ts() }}
    or (is_anonymous and anonymous_id in (
        select anonymous_id from {{ ref('int_identity_map') }}
        where first_identified_at >= {{ reprocess_from_ts() }}))
  )
{% endif %}
