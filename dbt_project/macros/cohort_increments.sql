{#
  fct_cohort_retention rebuilt from its own previous rows where the inputs did not change
  (DuckDB, `dbt run` / `dbt build`; anywhere else, on a first build and on --full-refresh every
  row is computed, as before).

  A cell (cohort, period) depends only on the cohort's users (dim_users.signup_date), their
  active days inside the period (int_user_activity_daily, activity_events > 0) and, for being
  on the grid at all, the last day with data. Beside the mart, each build stores a digest of
  those inputs, `<mart>__inputs` (cohort_inputs_digest): per activity_date the row count and
  the sum of hash(user_id) over its active rows; per cohort its size and the sum of
  hash(user_id) over its users; and the mart's own row count and row hash, as written. The
  next build compares today's digest with it (cohort_retention_floor): `floor` is the
  earliest of the changed days, the changed (new, gone or re-composed) cohorts' starts and the
  old and new last day + 1. A cell whose period starts before floor's period is unchanged and
  copied from the stored mart; every other cell is computed from the active days since then.
  What the upstream models did to get there (late data, re-loads, backfills, identity
  stitching) does not matter: only what their rows are now against what they were.
  Limits: a change that leaves a day's (count, hash sum) equal, a 64-bit collision, goes
  unseen; a stored mart that differs from the digest's record of it (written by other code)
  means a full computation.
#}

{% macro cohort_inputs_enabled() -%}
  {{ return(execute and not var('lint_only', false) and target.type == 'duckdb'
            and flags.WHICH in ('run', 'build')) }}
{%- endmacro %}

{% macro cohort_inputs_relation(suffix='__inputs') -%}
  {{ return(this.incorporate(path={'identifier': this.identifier ~ suffix})) }}
{%- endmacro %}

{# The digest rows (kind, grain, key_date, n, h) of the inputs, as of now. #}
{% macro cohort_inputs_digest(users_rel, activity_rel) -%}
  select
      'day' as kind,
      cast(null as {{ dbt.type_string() }}) as grain,
      activity_date as key_date,
      count(*) as n,
      coalesce(sum(case when activity_events > 0 then hash(user_id) end), 0) as h
  from {{ activity_rel }}
  group by activity_date
  {%- for grain in ['week', 'month'] %}
  union all
  select
      'cohort' as kind,
      '{{ grain }}' as grain,
      cast({{ dbt.date_trunc(grain, 'signup_date') }} as date) as key_date,
      count(*) as n,
      coalesce(sum(hash(user_id)), 0) as h
  from {{ users_rel }}
  group by cast({{ dbt.date_trunc(grain, 'signup_date') }} as date)
  {%- endfor %}
{%- endmacro %}

{# The digest row of the mart as stored: its row count and row hash. #}
{% macro cohort_mart_digest(relation) -%}
  select
      'mart' as kind,
      cast(null as {{ dbt.type_string() }}) as grain,
      cast(null as date) as key_date,
      count(*) as n,
      coalesce(sum(hash(
          cohort_grain, cohort_start, period_number, cohort_size, retained_users, retention_rate
      )), 0) as h
  from {{ relation }}
{%- endmacro %}

{#
  When the model is rendered for a run: writes today's digest to `<mart>__inputs_next` (the
  post-hook stores it) and returns the floor (an ISO date string) when the stored rows can be
  reused, else none (compute everything).
#}
{% macro cohort_retention_floor(users_rel, activity_rel) -%}
  {%- if not cohort_inputs_enabled() -%}{{ return(none) }}{%- endif -%}
  {%- set next_rel = cohort_inputs_relation('__inputs_next') -%}
  {%- do run_query('create or replace table ' ~ next_rel ~ ' as '
      ~ cohort_inputs_digest(users_rel, activity_rel)) -%}
  {%- set stored = cohort_inputs_relation() -%}
  {%- if not mart_incremental(this.identifier)
      or adapter.get_relation(database=stored.database, schema=stored.schema,
                              identifier=stored.identifier) is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set sql -%}
    with
    new_inputs as (select * from {{ next_rel }}),
    old_inputs as (select * from {{ stored }} where kind in ('day', 'cohort')),
    changed as (
        select coalesce(n.key_date, o.key_date) as key_date
        from new_inputs as n
        full outer join old_inputs as o
            on
                n.kind = o.kind
                and n.grain is not distinct from o.grain
                and n.key_date is not distinct from o.key_date
        where n.n is distinct from o.n or n.h is distinct from o.h
    ),
    mart_now as ({{ cohort_mart_digest(this) }}),
    mart_then as (select n, h from {{ stored }} where kind = 'mart')
    select
        (select count(*) from mart_then) = 1
        and (select count(*) from mart_now inner join mart_then
             on mart_now.n = mart_then.n and mart_now.h = mart_then.h) = 1 as mart_as_written,
        least(
            coalesce((select min(key_date) from changed), cast('9999-12-31' as date)),
            (select max(key_date) from old_inputs where kind = 'day') + 1,
            (select max(key_date) from new_inputs where kind = 'day') + 1
        ) as floor_date
  {%- endset -%}
  {%- set row = run_query(sql).rows[0] -%}
  {%- if not row[0] or row[1] is none -%}{{ return(none) }}{%- endif -%}
  {{ return(row[1] | string) }}
{%- endmacro %}

{# Post-hook: the digest written at render becomes the stored one, with the mart's own row. #}
{% macro cohort_inputs_store() -%}
  {%- if not cohort_inputs_enabled() -%}{{ return('') }}{%- endif -%}
  {%- set next_rel = cohort_inputs_relation('__inputs_next') -%}
  create or replace table {{ cohort_inputs_relation() }} as
  select * from {{ next_rel }}
  union all
  {{ cohort_mart_digest(this) }};
  drop table {{ next_rel }}
{%- endmacro %}

{# The first day of `grain`'s period holding the date literal `day`. #}
{% macro period_start_of(grain, day) -%}
  cast({{ dbt.date_trunc(grain, "cast('" ~ day ~ "' as date)") }} as date)
{%- endmacro %}
