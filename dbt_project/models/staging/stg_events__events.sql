-- Product events, typed and de-duplicated by message_id (Segment retries deliver the same
-- message more than once): the copy received first wins, so a re-delivery never changes an
-- event that was already processed.
with source as (
    select * from {{ source('raw', 'events') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by message_id
            order by received_at, _partition_date, _source_file, _source_line, {{ adapter.quote('timestamp') }}
        ) as copy_rank
    from source
    where message_id is not null
)

select
    message_id,
    lower(type) as event_type,
    event as event_name,
    nullif(trim(user_id), '') as user_id,
    nullif(trim(anonymous_id), '') as anonymous_id,
    cast({{ adapter.quote('timestamp') }} as {{ dbt.type_timestamp() }}) as event_at,
    cast({{ adapter.quote('timestamp') }} as date) as event_date,
    cast(received_at as {{ dbt.type_timestamp() }}) as received_at,
    properties,
    context,
    _partition_date as partition_date
from ranked
where copy_rank = 1
