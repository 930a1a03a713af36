{#
  The partition window handed over by Dagster: [min_date, max_date), ISO dates.
  Incremental models rebuild from min_date - late_arrival_days (earlier per user where needed)
  up to the newest data: every later day depends on the re-processed ones (sessions, rolling
  features), so re-running an old partition refreshes what follows it. max_date is accepted
  for the partition API but does not cut the rebuild short.

  The window is not a var: a new day would change dbt's vars, and a change of vars makes dbt
  re-parse the whole project. Dagster writes it to the one-row table segflow_run_window before
  dbt runs (orchestration/run_window.py). A run by hand may still pass
  --vars '{"min_date": ..., "max_date": ...}' (store_run_window keeps them in the table);
  without either, everything is built. The table lives for one dbt invocation (on-run-end).
#}
{% macro run_window_relation() -%}
  {{ target.schema }}.segflow_run_window
{%- endmacro %}

{#
  on-run-start: the --vars window when given, else the one Dagster wrote, else everything.
  replace_table_as (cross_db.sql) replaces the table on every engine.
#}
{% macro store_run_window() -%}
  {%- set columns -%}
    cast('{{ var("min_date", "1970-01-01") }}' as date) as min_date,
    cast('{{ var("max_date", "2999-12-31") }}' as date) as max_date
  {%- endset -%}
  {%- if var("min_date", none) is not none -%}
    {{ replace_table_as(run_window_relation(), 'select ' ~ columns) }}
  {%- else -%}
    create table if not exists {{ run_window_relation() }} as select {{ columns }}
  {%- endif -%}
{%- endmacro %}

{#
  One bound of the window. When a model runs: the stored date as a literal (DuckDB prunes scans
  on literals). At parse time (configs such as incremental_predicates and test `where` are
  fixed then): a subquery, read when the statement runs, so the manifest never names a day.
  A table created by the on-run-start hook is not in dbt's relation cache; it then holds the
  var or default, which is what is returned. sqlfluff (vars.lint_only) sees the default.
#}
{% macro run_window_bound(column, default) -%}
  {%- if var('lint_only', false) -%}
    cast('{{ default }}' as date)
  {%- elif execute -%}
    {%- set stored = stored_run_window() -%}
    cast('{{ stored[column] if stored is not none else var(column, default) }}' as date)
  {%- else -%}
    cast((select {{ column }} from {{ run_window_relation() }}) as date)
  {%- endif -%}
{%- endmacro %}

{#
  The stored window as {'min_date': ..., 'max_date': ...}, or none when dbt's relation cache has
  no segflow_run_window. Read once per dbt invocation: the table is fixed from on-run-start to
  on-run-end, and one fct_user_features compile alone asked for a bound 52 times (~3.5 ms CPU
  per query). The answer is kept in `graph` (the invocation's manifest, shared by every node and
  thread; orchestration.dbt_parse gives each in-process invocation a new one), under the
  invocation id so that no other invocation ever reads it.
#}
{% macro stored_run_window() -%}
  {%- set key = 'segflow_run_window:' ~ invocation_id -%}
  {%- if key not in graph -%}
    {%- set relation = adapter.get_relation(
        database=target.database, schema=target.schema, identifier='segflow_run_window') -%}
    {%- if relation is none -%}{{ return(none) }}{%- endif -%}
    {%- set row = run_query('select min_date, max_date from ' ~ relation).rows[0] -%}
    {%- do graph.update({key: {'min_date': row[0], 'max_date': row[1]}}) -%}
  {%- endif -%}
  {{ return(graph[key]) }}
{%- endmacro %}

{#
  `sql` with the run window's parse-time subqueries (configs: incremental_predicates, test
  `where`) replaced by the stored dates as literals. DuckDB prunes row groups on a literal
  bound but not on a subquery: stg_events__events' delete read all 24.5M rows at 100k x 180.
#}
{% macro run_window_literals(sql) -%}
  {%- set out = namespace(sql=sql | string) -%}
  {%- if execute and not var('lint_only', false) -%}
    {%- for column, default in [('min_date', '1970-01-01'), ('max_date', '2999-12-31')] -%}
      {%- set out.sql = out.sql | replace(
          '(select ' ~ column ~ ' from ' ~ run_window_relation() ~ ')',
          run_window_bound(column, default) | trim) -%}
    {%- endfor -%}
  {%- endif -%}
  {{- out.sql -}}
{%- endmacro %}

{% macro min_date() %}{{ run_window_bound('min_date', '1970-01-01') }}{% endmacro %}
{% macro max_date() %}{{ run_window_bound('max_date', '2999-12-31') }}{% endmacro %}

{#
  Whether the mart `identifier` is being built incrementally: the test dbt's is_incremental()
  makes on the model being built, for an ephemeral model that feeds that mart (its own
  is_incremental() is always false).
#}
{% macro mart_incremental(identifier) -%}
  {%- if not execute or var('lint_only', false) -%}{{ return(false) }}{%- endif -%}
  {%- set relation = adapter.get_relation(
      database=target.database, schema=target.schema, identifier=identifier) -%}
  {{ return(relation is not none and relation.type == 'table' and not flags.FULL_REFRESH) }}
{%- endmacro %}

{# Start of the re-processing window: late events up to late_arrival_days old are accepted. #}
{% macro reprocess_from() -%}
  {{ dbt.dateadd('day', -1 * setting('late_arrival_days') | int, min_date()) }}
{%- endmacro %}

{% macro reprocess_from_ts() -%}
  cast({{ reprocess_from() }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{# SQL list literal of strings: ('a', 'b'). #}
{% macro sql_list(values) -%}
  ({% for v in values %}'{{ v | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{# Column-safe name for an event name: "Report Shared" -> report_shared. #}
{% macro slug(name) -%}
  {{ modules.re.sub('[^a-z0-9]+', '_', name | lower).strip('_') }}
{%- endmacro %}

{# Events of one tracking-plan milestone. #}
{% macro milestone_events(milestone_name) -%}
  {%- for m in var('tracking_plan')['milestones'] if m['name'] == milestone_name -%}
    {{ return(m['events']) }}
  {%- endfor -%}
  {{ exceptions.raise_compiler_error("milestone '" ~ milestone_name ~ "' is not in vars.tracking_plan.milestones") }}
{%- endmacro %}

{% macro boolean_to_int(expr) -%}
  case when {{ expr }} then 1 else 0 end
{%- endmacro %}

{# The columns of fct_user_features, as "alias.col, ..." (looked up when the model runs). #}
{% macro feature_columns(alias) -%}
  {%- if execute and not var('lint_only', false) -%}
    {%- set cols = adapter.get_columns_in_relation(ref('fct_user_features')) -%}
    {%- for c in cols %}{{ alias }}.{{ adapter.quote(c.name) }}{{ ", " if not loop.last }}{% endfor -%}
  {%- else -%}
    {{ alias }}.user_id
  {%- endif -%}
{%- endmacro %}

{#
  Start of the de-duplication look-back: stored events of the dedupe_lookback_days partitions
  before reprocess_from are compared with the re-read partitions (re-deliveries).
#}
{% macro dedupe_from() -%}
  {{ dbt.dateadd('day', -1 * var('dedupe_lookback_days') | int, reprocess_from()) }}
{%- endmacro %}

{#
  Aggregate: the value of `expr` on the row with the smallest (order_cols...), as one hash
  aggregate (DuckDB arg_min with a row-valued key; other adapters need their own variant).
#}
{% macro first_by(expr, order_cols) -%}{{ return(adapter.dispatch('first_by', 'segflow')(expr, order_cols)) }}{%- endmacro %}
{% macro default__first_by(expr, order_cols) -%}
  arg_min({{ expr }}, ({{ order_cols | join(', ') }}))
{%- endmacro %}

{# A cheap 64-bit hash of an id for grouping (DuckDB hash(); md5 elsewhere). #}
{% macro segflow_id_hash(expr) -%}{{ return(adapter.dispatch('segflow_id_hash', 'segflow')(expr)) }}{%- endmacro %}
{% macro default__segflow_id_hash(expr) -%}{{ dbt.hash(expr) }}{%- endmacro %}
{% macro duckdb__segflow_id_hash(expr) -%}hash({{ expr }}){%- endmacro %}
