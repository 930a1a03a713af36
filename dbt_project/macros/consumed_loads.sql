{#
  Consumed-load markers: what each incremental event model has already processed, so that a
  forward-moving daily run reads only the raw partitions loaded since ("narrow" mode) instead
  of re-reading the late-arrival window's partitions for every user.

  segflow_consumed_loads holds, per model and raw.events partition, the partition's
  max(_loaded_at) and row count as the model last processed it. A model's post-hook
  (consumed_loads_hook) writes it inside the model's own transaction, so a model that fails,
  or a run whose dbt fails after its load, marks nothing: the next run still sees those
  partitions as unprocessed.

  A run is narrow only when every change since the model's last run is a new partition, later
  than every partition the model processed and inside the run window (>= min_date), and the
  window itself moves forward (min_date later than the last processed partition). Anything
  else (a re-loaded or vanished partition, a back-filled older one, a re-run, no marker yet,
  not DuckDB) runs as before ("wide": the late-arrival window re-read for every user), which
  then marks the partitions it re-read. Changes are found with two cheap reads: the window's
  partitions (from reprocess_from on; row counts too, for loads that keep _loaded_at) and any
  row loaded after the newest marker in an older partition (raw is appended in load order, so
  this read skips the older row groups).
#}
{% macro consumed_loads_relation() -%}
  {{ target.schema }}.segflow_consumed_loads
{%- endmacro %}

{#
  The new raw.events partitions (a list of ISO dates, possibly empty) when `model_name` may run
  narrow, else none. Only meaningful while an incremental model is built.
#}
{% macro raw_event_changes(model_name) -%}
  {%- if not execute or var('lint_only', false) or target.type != 'duckdb' -%}{{ return(none) }}{%- endif -%}
  {%- set marker_exists = run_query(
      "select count(*) from information_schema.tables where table_schema = '" ~ target.schema
      ~ "' and table_name = 'segflow_consumed_loads'").columns[0].values()[0] -%}
  {%- if marker_exists == 0 -%}{{ return(none) }}{%- endif -%}
  {%- set last = run_query(
      "select max(partition_date), max(loaded_at) from " ~ consumed_loads_relation()
      ~ " where model = '" ~ model_name ~ "'").rows[0] -%}
  {%- if last[0] is none -%}{{ return(none) }}{%- endif -%}
  {%- set last_date = "cast('" ~ last[0] ~ "' as date)" -%}
  {%- set last_loaded = "cast('" ~ last[1] ~ "' as " ~ dbt.type_timestamp() ~ ")" -%}
  {%- set sql -%}
    with
    seen as (
        select _partition_date as partition_date, max(_loaded_at) as loaded_at, count(*) as row_count
        from {{ source('raw', 'events') }}
        where _partition_date >= {{ reprocess_from() }}
        group by 1
    ),
    done as (
        select partition_date, loaded_at, row_count from {{ consumed_loads_relation() }}
        where model = '{{ model_name }}' and partition_date >= {{ reprocess_from() }}
    )
    select
        -- partitions of the window up to the last processed one that changed, vanished or
        -- were never processed (a missing day loaded late)
        (select count(*) from done full join seen using (partition_date)
         where coalesce(done.partition_date, seen.partition_date) <= {{ last_date }} and (
            done.partition_date is null or seen.partition_date is null
            or done.loaded_at <> seen.loaded_at or done.row_count <> seen.row_count))
        -- older partitions loaded since
        + (select count(*) from {{ source('raw', 'events') }}
           where _loaded_at > {{ last_loaded }} and _partition_date < {{ reprocess_from() }}),
        (select string_agg(strftime(partition_date, '%Y-%m-%d'), ',' order by partition_date)
         from seen where partition_date > {{ last_date }}),
        {{ min_date() }} > {{ last_date }}
        and coalesce((select min(partition_date) from seen where partition_date > {{ last_date }})
                     >= {{ min_date() }}, false)
  {%- endset -%}
  {%- set row = run_query(sql).rows[0] -%}
  {%- if row[0] != 0 or not row[2] -%}{{ return(none) }}{%- endif -%}
  {{ return(row[1].split(',')) }}
{%- endmacro %}

{# SQL list of date literals: (cast('2026-12-04' as date), ...). #}
{% macro date_list(days) -%}
  ({% for d in days %}cast('{{ d }}' as date){{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{# `column` in the new partitions, with a range bound on a literal so that scans skip older row groups. #}
{% macro in_new_partitions(column, days) -%}
  ({{ column }} >= cast('{{ days | min }}' as date) and {{ column }} in {{ date_list(days) }})
{%- endmacro %}

{#
  Post-hook of the incremental event models (DuckDB only): marks the raw.events partitions the
  build processed. A full build processed every partition; an incremental one (narrow or wide)
  every partition from reprocess_from on (narrow: the new ones, and those before the run that
  are unchanged). Runs inside the model's transaction.
#}
{% macro consumed_loads_hook() -%}
  {%- if target.type != 'duckdb' or var('lint_only', false) -%}{{ return('') }}{%- endif -%}
  {%- set incremental = is_incremental() -%}
  create table if not exists {{ consumed_loads_relation() }} (
      model varchar, partition_date date, loaded_at timestamp, row_count bigint);
  delete from {{ consumed_loads_relation() }}
  where model = '{{ this.identifier }}'
  {%- if incremental %} and partition_date >= {{ run_window_literals(reprocess_from()) }}{% endif %};
  insert into {{ consumed_loads_relation() }}
  select '{{ this.identifier }}', _partition_date, max(_loaded_at), count(*)
  from {{ source('raw', 'events') }}
  {%- if incremental %} where _partition_date >= {{ run_window_literals(reprocess_from()) }}{% endif %}
  group by 2
{%- endmacro %}

{#
  Body of a query: users whose stitched events are rebuilt in the window although they may not
  be in the new partitions: for anonymous ids first identified in the window (their events are
  re-stitched), the user the map names now and every user that claimed the id in the window
  (a late, earlier pair moves the id and its events to another user). Relations are passed in
  so that config() can use it (ref() there names the model itself).
#}
{% macro window_identified_users(staged, id_map) -%}
  select window_ids.user_id from {{ id_map }} as window_ids
  where window_ids.first_identified_at >= {{ reprocess_from_ts() }}
  union
  select claims.user_id from {{ staged }} as claims
  where
    claims.event_at >= {{ reprocess_from_ts() }}
    and claims.user_id is not null
    and claims.anonymous_id in (
      select window_ids.anonymous_id from {{ id_map }} as window_ids
      where window_ids.first_identified_at >= {{ reprocess_from_ts() }})
{%- endmacro %}

{# window_identified_users for a model's config: the sibling relations. #}
{% macro window_identified_users_predicate(this_relation) -%}
  {%- set names = {} -%}
  {%- for name in ['stg_events__events', 'int_identity_map'] -%}
    {%- do names.update({name: this_relation.incorporate(path={"identifier": name}) if this_relation is not none else name}) -%}
  {%- endfor -%}
  {{ window_identified_users(names['stg_events__events'], names['int_identity_map']) }}
{%- endmacro %}

{#
  Narrow counterpart of user_reprocess_cuts (macros/session_cuts.sql), rendered inside a
  query that has the CTE stitched_cuts: a cut for every user whose stitched events can have
  changed, and only for them. A user's base is the earliest of: their earliest event of the new
  partitions, reprocess_from for users of ids identified in the window (as in a wide run), their
  stitched cut; the cut moves back to a stored session still open at the base, as in a wide run.
  Sessions and days before a user's cut come out the same from the same events, so they are
  kept; a wide run would rebuild them (from reprocess_from) into the same rows.
#}
{% macro narrow_user_cuts(sessions_relation, new_partitions) -%}
  {%- set timeout = var('session_timeout_minutes') | int -%}
  with bases as (
    select user_id, min(base_at) as base_at from (
      -- the new partitions' events, stitched as int_events_stitched stitches them
      select
        coalesce(new_events.user_id, id_map.user_id) as user_id,
        min(new_events.event_at) as base_at
      from {{ ref('stg_events__events') }} as new_events
      left join {{ ref('int_identity_map') }} as id_map
        on new_events.user_id is null and new_events.anonymous_id = id_map.anonymous_id
      where
        {{ in_new_partitions('new_events.partition_date', new_partitions) }}
        and coalesce(new_events.user_id, id_map.user_id) is not null
      group by 1
      union all
      select moved.user_id, {{ reprocess_from_ts() }} as base_at
      from ({{ window_identified_users(ref('stg_events__events'), ref('int_identity_map')) }}) as moved
      union all
      select stitched_cuts.user_id, stitched_cuts.cut_at as base_at from stitched_cuts
    ) as all_bases
    group by user_id
  )
  select user_id, min(cut_at) as cut_at, cast(min(cut_at) as date) as cut_date
  from (
    select bases.user_id, bases.base_at as cut_at from bases
    union all
    select s.user_id, s.session_start as cut_at
    from {{ sessions_relation }} as s
    inner join bases on bases.user_id = s.user_id
    where s.session_start < bases.base_at
      and s.session_end >= {{ dbt.dateadd('minute', -1 * timeout, 'bases.base_at') }}
      -- a literal no later than any base (as in user_reprocess_cuts): the scan skips older sessions
      and s.session_end >= {{ dbt.dateadd('minute', -1 * timeout,
                              'least(' ~ reprocess_from_ts() ~ ', ' ~ anonymous_history_from_ts() ~ ')') }}
  ) as candidate_cuts
  group by user_id
{%- endmacro %}
