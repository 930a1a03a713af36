{#
  A roll-forward of fct_user_features rebuilds a user's stored days in the late-arrival window
  only when that user's history there changed (int_user_feature_regions); every other user
  gets only the new day(s).

  When the run starts at the day after the newest stored snapshot (features_next_day), what
  the stored days were built from is every raw partition before min_date; this run adds the
  partitions from min_date on (the daily job loads the run's partitions only). A stored day can
  then change only through those partitions' rows dated before min_date, or through the
  identity map, which attributes an anonymous id's older events to a user. Any other run (a
  re-run, a backfill, a day missed): every user with data in the window is rebuilt, as before.
  Assumed: raw partitions before min_date were last loaded by a run that also built the
  features (a run that re-loads an old partition and then fails before dbt leaves the next
  day's run unaware of that reload: re-run that partition's day).
#}
{% macro features_changed_only() -%}
  {%- if not features_incremental() -%}{{ return(false) }}{%- endif -%}
  {%- set relation = adapter.get_relation(
      database=target.database, schema=target.schema, identifier='fct_user_features') -%}
  {%- set sql = 'select count(*) from ' ~ relation ~ ' having '
      ~ dbt.dateadd('day', 1, 'max(snapshot_date)') ~ ' = ' ~ min_date() -%}
  {{ return(run_query(sql).rows | length == 1) }}
{%- endmacro %}

{#
  Body of a CTE: the users whose history before min_date changed in this run (a superset):
  - late events: the new partitions' events dated before min_date (their stitched user);
  - attribution: anonymous ids first identified from min_date on with anonymous events before
    it, and the anonymous ids of late events (the map takes the earliest identification, so a
    late one can move an id from one user to another): their user now and any user that
    claimed the id in the window (events carrying both ids);
  - invoices of the new partitions paid before min_date, unpaid, or re-exported (their
    invoice_id is in an older partition);
  - CRM versions of the new partitions dated before min_date.
  The raw tables hold the partition each row came from; the ids are typed as staging types
  them (trim).
#}
{% macro users_with_changed_history() -%}
  {#- the window's bounds looked up once (each min_date() is a query) -#}
  {%- set min_d = min_date() -%}
  {%- set min_ts = 'cast(' ~ min_d ~ ' as ' ~ dbt.type_timestamp() ~ ')' -%}
  {%- set events = ref('stg_events__events') -%}
  {%- set identity_map = ref('int_identity_map') -%}
  {%- set invoices = source('raw', 'billing_invoices') -%}
  select late.user_id
  from {{ events }} as late
  where
    late.partition_date >= {{ min_d }}
    and late.event_date < {{ min_d }}
    and late.user_id is not null
  union
  select id_map.user_id
  from {{ identity_map }} as id_map
  where
    (id_map.first_identified_at >= {{ min_ts }} and id_map.first_anonymous_at < {{ min_ts }})
    or id_map.anonymous_id in (
      select late.anonymous_id from {{ events }} as late
      where late.partition_date >= {{ min_d }} and late.event_date < {{ min_d }}
    )
  union
  select claims.user_id
  from {{ events }} as claims
  where
    claims.partition_date >= {{ reprocess_from() }}
    and claims.user_id is not null
    and claims.anonymous_id in (
      select id_map.anonymous_id from {{ identity_map }} as id_map
      where id_map.first_identified_at >= {{ min_ts }} and id_map.first_anonymous_at < {{ min_ts }}
      union
      select late.anonymous_id from {{ events }} as late
      where late.partition_date >= {{ min_d }} and late.event_date < {{ min_d }}
    )
  union
  select trim(new_invoices.user_id) as user_id
  from {{ invoices }} as new_invoices
  where
    new_invoices._partition_date >= {{ min_d }}
    and (
      new_invoices.paid_at is null
      or cast(new_invoices.paid_at as date) < {{ min_d }}
      or new_invoices.invoice_id in (
        select older.invoice_id from {{ invoices }} as older
        where older._partition_date < {{ min_d }}
      )
    )
  union
  select trim(new_versions.user_id) as user_id
  from {{ source('raw', 'crm_contacts') }} as new_versions
  where
    new_versions._partition_date >= {{ min_d }}
    and (
      new_versions.updated_at is null
      or cast(new_versions.updated_at as date) < {{ min_d }}
    )
{%- endmacro %}
