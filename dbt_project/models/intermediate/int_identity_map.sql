-- anonymous_id -> user_id from every event that carries both (identify calls, and track/page
-- calls sent after login). An anonymous_id seen with several users (shared device) belongs to
-- the first user it was identified as (earliest event_at, then smallest message_id).
-- One hash aggregate (arg_min per anonymous_id), no window sort.
-- A warehouse built before first_anonymous_at existed gets the column on its next run
-- (append_new_columns): the rows that run rebuilds, the only ones read, carry it.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='anonymous_id',
    on_schema_change='append_new_columns',
    post_hook="{{ consumed_loads_hook() }}",
) }}
{#- Narrow (macros/consumed_loads.sql): only ids seen in the new partitions can change (any
    other id is rebuilt from the same pairs and events as last time). -#}
{%- set new_partitions = raw_event_changes(this.identifier) if is_incremental() else none %}

-- Incremental: an anonymous_id already identified before the window keeps its row (a later
-- pair cannot be earlier); only the others are rebuilt from the window's pairs, so a day
-- rewrites the ids first identified in the window and nothing else.
with candidates as (
    select
        anonymous_id,
        user_id,
        event_at as identified_at,
        message_id
    from {{ ref('stg_events__events') }}
    where
        anonymous_id is not null
        and user_id is not null
    {% if is_incremental() %}
      and event_at >= {{ reprocess_from_ts() }}
      and anonymous_id not in (
          select anonymous_id from {{ this }} where first_identified_at < {{ reprocess_from_ts() }})
    {% endif %}
    {% if new_partitions is not none %}
      and anonymous_id in (
          select anonymous_id from {{ ref('stg_events__events') }}
          where {{ in_new_partitions('partition_date', new_partitions) }})
    {% endif %}
),

identified as (
    select
        anonymous_id,
        {{ first_by('user_id', ['identified_at', 'message_id']) }} as user_id,
        min(identified_at) as first_identified_at,
        {{ first_by('message_id', ['identified_at', 'message_id']) }} as first_message_id
    from candidates
    group by anonymous_id
),

-- The earliest anonymous event (no user_id) of each rebuilt id: stitching attributes the
-- anonymous history from there on to the user. Kept here so that a run finds how far back
-- the newly identified ids reach from this small table, not from a scan of every event.
anonymous_firsts as (
    select
        anonymous_id,
        min(event_at) as first_anonymous_at
    from {{ ref('stg_events__events') }}
    where
        user_id is null
        and anonymous_id in (select identified.anonymous_id from identified)
    group by anonymous_id
)

select
    identified.anonymous_id,
    identified.user_id,
    identified.first_identified_at,
    identified.first_message_id,
    anonymous_firsts.first_anonymous_at
from identified
left join anonymous_firsts on identified.anonymous_id = anonymous_firsts.anonymous_id
