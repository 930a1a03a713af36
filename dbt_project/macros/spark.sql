{#
  The Spark engine (dbt-spark, target `spark`): the adapter-specific halves of segflow's
  portable macros. Every model is written once; what differs per engine lives here (spark__)
  and beside the default in cross_db.sql.
#}

{# arg_min with a row-valued key: Spark's min_by orders structs field by field. #}
{% macro spark__first_by(expr, order_cols) -%}
  min_by({{ expr }}, struct({{ order_cols | join(', ') }}))
{%- endmacro %}

{% macro spark__unnest_array(expr) -%}explode({{ expr }}){%- endmacro %}

{% macro spark__segflow_double() -%}double{%- endmacro %}

{% macro spark__segflow_exact_numeric() -%}decimal(38, 9){%- endmacro %}

{% macro spark__segflow_id_hash(expr) -%}xxhash64({{ expr }}){%- endmacro %}

{#
  `create or replace table ... as`: Spark's Parquet (v1) tables cannot be replaced in one
  statement, so the old one is dropped first (one statement per call on Spark).
#}
{% macro replace_table_as(relation, sql) -%}
  {{ return(adapter.dispatch('replace_table_as', 'segflow')(relation, sql)) }}
{%- endmacro %}
{% macro default__replace_table_as(relation, sql) -%}
  create or replace table {{ relation }} as {{ sql }}
{%- endmacro %}
{% macro spark__replace_table_as(relation, sql) -%}
  {%- if execute -%}{%- do run_query("drop table if exists " ~ relation) -%}{%- endif -%}
  create table {{ relation }} as {{ sql }}
{%- endmacro %}

{#
  Source tables on Spark are Parquet folders: <SEGFLOW_SPARK_SOURCES_DIR>/<schema>/<table>/, the
  raw.* tables written by orchestration.spark.raw_export and the Python steps' outputs
  (main.user_scores, main.user_segments). The sources the selected models read are registered
  as external tables at the start of every dbt run and refreshed, so files added since the last
  run are read. No-op on other adapters (segflow writes those tables itself).
#}
{% macro register_source_tables() -%}
  {%- if target.type == 'spark' and execute -%}
    {%- set root = env_var('SEGFLOW_SPARK_SOURCES_DIR', '../data/spark/sources') -%}
    {#- The selected nodes' sources, and those of the ephemeral models they inline (never
        selected themselves: an ephemeral model is not a step's asset). -#}
    {%- set wanted, todo = [], [] -%}
    {%- for uid in selected_resources if uid in graph.nodes -%}
      {%- do todo.append(uid) -%}
    {%- endfor -%}
    {%- for i in range(10000) -%}
      {%- if i < todo | length -%}
        {%- for dep in graph.nodes[todo[i]].depends_on.nodes -%}
          {%- if dep.startswith('source.') and dep not in wanted -%}
            {%- do wanted.append(dep) -%}
          {%- elif dep in graph.nodes and dep not in todo
                and graph.nodes[dep].config.materialized == 'ephemeral' -%}
            {%- do todo.append(dep) -%}
          {%- endif -%}
        {%- endfor -%}
      {%- endif -%}
    {%- endfor -%}
    {%- for uid in wanted -%}
      {%- set node = graph.sources[uid] -%}
      {%- set relation = node.schema ~ '.' ~ node.identifier -%}
      {%- do run_query("create schema if not exists " ~ node.schema) -%}
      {%- do run_query("create table if not exists " ~ relation ~ " using parquet location '"
                        ~ root ~ "/" ~ node.schema ~ "/" ~ node.identifier ~ "'") -%}
      {%- do run_query("refresh table " ~ relation) -%}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro %}

{#
  Incremental strategies on Spark. dbt-spark knows append / insert_overwrite / merge; segflow's
  models use `replace_where` (delete the target rows matching incremental_predicates, insert the
  fresh rows) and `delete+insert` (by unique_key). Parquet tables cannot delete rows, so on Spark
  both become `insert overwrite` (spark_rewrite_incremental): by date partition for a model
  partitioned with date_partition_by, the whole table otherwise. The result is the same table
  as on DuckDB.
#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
  {%- if raw_strategy in ['replace_where', 'delete+insert'] -%}
    {%- do return(raw_strategy) -%}
  {%- endif -%}
  {%- do return(dbt_spark.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) -%}
{%- endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
  {%- if strategy == 'replace_where' -%}
    {%- set predicates = incremental_predicates or [] -%}
    {%- if predicates is string -%}{%- set predicates = [predicates] -%}{%- endif -%}
    {%- if predicates | length == 0 -%}
      {{ exceptions.raise_compiler_error("replace_where needs incremental_predicates (model " ~ target ~ ")") }}
    {%- endif -%}
    {{ spark_rewrite_incremental(source, target, predicates) }}
  {%- elif strategy == 'delete+insert' -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {{ spark_rewrite_incremental(source, target,
         ["(" ~ keys | join(', ') ~ ") in (select " ~ keys | join(', ') ~ " from DBT_INTERNAL_SOURCE)"]) }}
  {%- else -%}
    {{ dbt_spark.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) }}
  {%- endif -%}
{%- endmacro %}

{#
  Which rows a Spark incremental run rewrites. A model whose config carries `partition_by`
  (date_partition_by below: Spark only) rewrites only the partitions the run touches: those
  of the fresh rows and those holding a target row the predicates replace. Their kept rows
  plus the fresh rows go to a staging table, which overwrites exactly those partitions
  (insert overwrite, dynamic partition mode); a touched partition left with no row is dropped.
  Without `partition_by` the staging table (the target's kept rows plus the fresh rows) becomes
  the table: one write of the table per run instead of two. Either way the result is the table
  DuckDB's delete + insert gives. Runs the rewrite; returns the final statement
  (dropping the staging table) for `main`.
#}
{% macro spark_rewrite_incremental(source, target, predicates) -%}
  {%- set staging = target.incorporate(path={"identifier": target.identifier ~ "__segflow_keep"}) -%}
  {%- set cols = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
  {%- set matched -%}
    {% for p in predicates %}({{ p | replace("DBT_INTERNAL_DEST", target | string) | replace("DBT_INTERNAL_SOURCE", source | string) }}){{ " and " if not loop.last }}{% endfor %}
  {%- endset -%}
  {%- set partition_by = config.get('partition_by') -%}
  {%- set parts = ([partition_by] if partition_by is string else partition_by) or [] -%}
  {%- do run_query("drop table if exists " ~ staging) -%}
  {%- if parts -%}
    {%- set keys = parts | join(', ') -%}
    {%- set touched = "select " ~ keys ~ " from " ~ source ~ " union select " ~ keys ~ " from "
                      ~ target ~ " where coalesce(" ~ matched ~ ", false)" -%}
    {%- do run_query("create table " ~ staging ~ " using parquet as select " ~ cols ~ " from "
                     ~ target ~ " where (" ~ keys ~ ") in (" ~ touched ~ ") and not coalesce("
                     ~ matched ~ ", false) union all select " ~ cols ~ " from " ~ source) -%}
    {%- set emptied = run_query("select distinct " ~ keys ~ " from (" ~ touched ~ ") except "
                                ~ "select distinct " ~ keys ~ " from " ~ staging) -%}
    {%- for row in emptied -%}
      {%- set spec = [] -%}
      {%- for col in parts -%}{%- do spec.append(col ~ " = '" ~ row[loop.index0] ~ "'") -%}{%- endfor -%}
      {%- do run_query("alter table " ~ target ~ " drop if exists partition (" ~ spec | join(', ') ~ ")") -%}
    {%- endfor -%}
    {%- do run_query("set spark.sql.sources.partitionOverwriteMode = DYNAMIC") -%}
    {%- do run_query("insert overwrite table " ~ target ~ " partition (" ~ keys ~ ") select "
                     ~ cols ~ " from " ~ staging) -%}
  {%- else -%}
    {#- The staging table is the new table: swapped in by two renames (the old one kept until
        the new one is in place), instead of being copied over the target a second time. -#}
    {%- set retired = target.incorporate(path={"identifier": target.identifier ~ "__segflow_old"}) -%}
    {%- do run_query("drop table if exists " ~ retired) -%}
    {%- do run_query("create table " ~ staging ~ " using parquet as select " ~ cols ~ " from "
                     ~ target ~ " where not coalesce(" ~ matched ~ ", false) union all select "
                     ~ cols ~ " from " ~ source) -%}
    {%- do run_query("alter table " ~ target ~ " rename to " ~ retired) -%}
    {%- do run_query("alter table " ~ staging ~ " rename to " ~ target) -%}
    {%- do run_query("drop table if exists " ~ retired) -%}
  {%- endif -%}
  drop table if exists {{ staging }}
{%- endmacro %}

{#
  A model's date partition: `partition_by` on Spark (one folder per day, so an incremental run
  rewrites only the days it touches), none elsewhere (DuckDB tables are not partitioned).
  Spark lists a partition column last in the table's columns, so a model whose column order
  others derive (fct_user_features: the training sets' feature order) is not partitioned.
#}
{% macro date_partition_by(column) -%}
  {{ return([column] if target.type == 'spark' else none) }}
{%- endmacro %}
