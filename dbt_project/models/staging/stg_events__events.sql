-- Product events, typed and de-duplicated by message_id (Segment retries deliver the same
-- message more than once): the copy received first wins, so a re-delivery never changes an
-- event that was already processed. Ties: earlier export partition, then file, line, timestamp.
--
-- De-duplicated once, where data arrives: an incremental table keyed by message_id.
-- A run re-reads the raw partitions from reprocess_from (min_date - late_arrival_days; those
-- partitions may have been re-loaded) and compares their message ids with the stored copies of
-- the dedupe_lookback_days partitions before that (a re-delivery within the look-back that
-- arrives later never replaces the kept copy). Rows outside [reprocess_from - look-back, ...)
-- are not read, so a day costs its own rows plus the look-back. A forward daily run whose
-- only changes are new partitions (macros/consumed_loads.sql) reads just those ("narrow").
-- The JSON `properties` / `context` stay in raw.events (no model reads them; join on
-- message_id when one does): copying them would double the table's size and build time.
-- A full build de-duplicates everything: a hash aggregate finds the (rare) duplicated ids and
-- only those are ranked; unique rows stream through in raw order.
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    partition_by=date_partition_by('partition_date'),
    unique_key='message_id',
    incremental_predicates=[
        "partition_date >= " ~ dedupe_from()
        ~ " and (partition_date >= " ~ reprocess_from()
        ~ " or message_id in (select message_id from DBT_INTERNAL_SOURCE))"
    ],
    narrow_predicates=[
        "partition_date >= " ~ dedupe_from()
        ~ " and message_id in (select message_id from DBT_INTERNAL_SOURCE)"
    ],
    post_hook="{{ consumed_loads_hook() }}",
) }}
{%- set order_key = "received_at, partition_date, source_file, source_line, event_at" %}
{#- Narrow (macros/consumed_loads.sql): only the new partitions are read; the stored copies of
    every partition from the look-back on take part in the ranking (the window's partitions
    are not re-read, their stored rows are the winners of their raw copies). -#}
{%- set new_partitions = raw_event_changes(this.identifier) if is_incremental() else none %}

{#- The typed raw rows to de-duplicate. Inlined where used: DuckDB materialises a CTE that is
    referenced more than once, and on a full build that would be a copy of every event. -#}
{%- set arrivals %}
    select
        message_id,
        lower(type) as event_type,
        event as event_name,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(anonymous_id), '') as anonymous_id,
        cast({{ adapter.quote('timestamp') }} as {{ dbt.type_timestamp() }}) as event_at,
        cast({{ adapter.quote('timestamp') }} as date) as event_date,
        cast(received_at as {{ dbt.type_timestamp() }}) as received_at,
        _partition_date as partition_date,
        _source_file as source_file,
        _source_line as source_line
    from {{ source('raw', 'events') }}
    where message_id is not null
    {% if new_partitions is not none %}
      and {{ in_new_partitions('_partition_date', new_partitions) }}
    {% elif is_incremental() %}
      and _partition_date >= {{ reprocess_from() }}
{% endif %}
{%- endset %}

with
{% if is_incremental() %}
-- Arrivals plus the stored copies (partitions before the re-read window, within the look-back)
-- of the same messages; the stored copy came from an earlier partition.
arrivals as ({{ arrivals }}),

candidates as (
    select * from arrivals
    union all
    select
        message_id, event_type, event_name, user_id, anonymous_id, event_at, event_date,
        received_at, partition_date,
        -- the partition date already orders a stored copy before the re-read ones
        cast(null as {{ dbt.type_string() }}) as source_file, cast(null as {{ dbt.type_bigint() }}) as source_line
    from {{ this }}
    where partition_date >= {{ dedupe_from() }}
      {% if new_partitions is none %}and partition_date < {{ reprocess_from() }}{% endif %}
      and message_id in (select message_id from arrivals)
),

-- As in a full build (below): only ids seen more than once are ranked (the sort of every
-- re-read row by id was most of the step's time); the rest stream through.
duplicated as (
    select {{ segflow_id_hash('message_id') }} as id_hash
    from candidates
    group by {{ segflow_id_hash('message_id') }}
    having count(*) > 1
),

kept as (
    select * from candidates
    where
        {{ segflow_id_hash('candidates.message_id') }}
        not in (select duplicated.id_hash from duplicated)
    union all
    select * from candidates
    where
        {{ segflow_id_hash('candidates.message_id') }}
        in (select duplicated.id_hash from duplicated)
    qualify row_number() over (partition by message_id order by {{ order_key }}) = 1
)
{% else %}
-- Only ids seen more than once are ranked (grouped by a 64-bit hash of the id: a small hash
-- table; a collision only sends a few more rows through the ranking, which partitions by the
-- id itself); everything else streams through in raw order.
duplicated as (
    select {{ segflow_id_hash('message_id') }} as id_hash
    from ({{ arrivals }}) as arrivals
    group by {{ segflow_id_hash('message_id') }}
    having count(*) > 1
),

kept as (
    select * from ({{ arrivals }}) as arrivals
    where
        {{ segflow_id_hash('arrivals.message_id') }}
        not in (select duplicated.id_hash from duplicated)
    union all
    select *
    from ({{ arrivals }}) as arrivals
    where
        {{ segflow_id_hash('arrivals.message_id') }}
        in (select duplicated.id_hash from duplicated)
    qualify row_number() over (partition by message_id order by {{ order_key }}) = 1
)
{% endif %}

select
    message_id,
    event_type,
    event_name,
    user_id,
    anonymous_id,
    event_at,
    event_date,
    received_at,
    partition_date
from kept
