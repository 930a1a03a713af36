-- Events attributed to a known user: their own user_id, or for anonymous events (pre-signup
-- page views, logged-out visits) the user their anonymous_id was identified as. Events of
-- anonymous_ids never identified stay out (they belong to no user).
-- Incremental: events from reprocess_from on, plus the whole anonymous history of
-- anonymous_ids first identified in this window.
{#- ref() inside config() resolves to this model at parse time; the map lives next to it. -#}
{%- set identity_map = this.incorporate(path={"identifier": "int_identity_map"}) if this is not none else "int_identity_map" -%}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    unique_key='message_id',
    incremental_predicates=[
        "event_at >= " ~ reprocess_from_ts()
        ~ " or (is_anonymous and anonymous_id in (select anonymous_id from "
        ~ identity_map ~ " where first_identified_at >= " ~ reprocess_from_ts() ~ "))"
    ],
) }}

with events as (
    select *
    from {{ ref('stg_events__events') }}
),

resolved as (
    select
        events.message_id,
        coalesce(events.user_id, identity.user_id) as stitched_user_id,
        events.user_id is null as is_anonymous,
        events.anonymous_id,
        events.event_type,
        events.event_name,
        events.event_at,
        events.event_date,
        events.received_at
    from events
    left join {{ ref('int_identity_map') }} as identity
        on events.user_id is null and events.anonymous_id = identity.anonymous_id
)

select *
from resolved
where stitched_user_id is not null
{% if is_incremental() %}
  and (
    event_at >= {{ reprocess_from_ts() }}
    or (is_anonymous and anonymous_id in (
        select anonymous_id from {{ ref('int_identity_map') }}
        where first_identified_at >= {{ reprocess_from_ts() }}))
  )
{% endif %}
