-- anonymous_id -> user_id from every event that carries both (identify calls, and track/page
-- calls sent after login). An anonymous_id seen with several users (shared device) belongs to
-- the first user it was identified as (earliest event_at, then smallest message_id).
-- One hash aggregate (arg_min per anonymous_id), no window sort.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='anonymous_id',
) }}

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
)

select
    anonymous_id,
    {{ first_by('user_id', ['identified_at', 'message_id']) }} as user_id,
    min(identified_at) as first_identified_at,
    {{ first_by('message_id', ['identified_at', 'message_id']) }} as first_message_id
from candidates
group by anonymous_id
