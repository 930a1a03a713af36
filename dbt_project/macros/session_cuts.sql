{#
  Per-user re-processing start for incremental runs (only rendered when is_incremental()).

  Everything from `reprocess_from` (min_date - late_arrival_days) on is rebuilt. Two things can
  reach further back for a user, and both move that user's cut earlier:
  - identity stitching: an anonymous_id first identified inside the window attributes its
    older anonymous events (pre-signup page views) to the user;
  - a stored session that is still "open" at the cut (its last event is within the session
    timeout of the cut) would be continued by the new events, so the cut moves back to that
    session's start.
  The cut is therefore always a session start, so sessions before it are final and sessions
  from it on are recomputed from events alone. Returns rows (user_id, cut_at, cut_date) only for
  users whose cut is earlier than reprocess_from.
#}
{% macro user_reprocess_cuts(sessions_relation) -%}
  {%- set timeout = var('session_timeout_minutes') | int -%}
  select user_id, min(cut_at) as cut_at, cast(min(cut_at) as date) as cut_date
  from (
    select stitched_cuts.user_id, stitched_cuts.cut_at
    from stitched_cuts
    union all
    select s.user_id, s.session_start as cut_at
    from {{ sessions_relation }} as s
    left join stitched_cuts on stitched_cuts.user_id = s.user_id
    where s.session_start < coalesce(stitched_cuts.cut_at, {{ reprocess_from_ts() }})
      and s.session_end >= {{ dbt.dateadd('minute', -1 * timeout,
                              'coalesce(stitched_cuts.cut_at, ' ~ reprocess_from_ts() ~ ')') }}
      -- the same bound as a literal no later than any user's (every stitched cut is an
      -- anonymous event of an id identified in the window): the scan skips older sessions
      and s.session_end >= {{ dbt.dateadd('minute', -1 * timeout,
                              'least(' ~ reprocess_from_ts() ~ ', ' ~ anonymous_history_from_ts() ~ ')') }}
  ) as candidate_cuts
  group by user_id
{%- endmacro %}

{#
  CTE body used by user_reprocess_cuts: users whose anonymous history got stitched in this
  window, from the identity map's first_anonymous_at (the earliest anonymous event of an id
  first identified in the window: int_events_stitched attributes its history from there on).
  Read from the small map, not from a scan of every stitched event (7 such scans a day).
#}
{% macro stitched_cuts_cte() -%}
  select user_id, min(first_anonymous_at) as cut_at
  from {{ ref('int_identity_map') }}
  where first_identified_at >= {{ reprocess_from_ts() }}
  group by 1
  having min(first_anonymous_at) < {{ reprocess_from_ts() }}
{%- endmacro %}

{#
  A literal no later than every user's cut in this run: min(reprocess_from, the earliest cut),
  looked up when the model runs. Models add it as an extra filter next to their per-user
  `coalesce(cut, reprocess_from)` bound (which sits behind a join, so the engine cannot use it
  to skip storage): a filter on a literal lets the scan of the event history skip the row
  groups before it. A user whose stitched anonymous history is old moves it back (correct,
  only slower). At parse time (and for sqlfluff): reprocess_from.
#}
{% macro reprocess_floor_ts(sessions_relation) -%}
  {%- if not execute or var('lint_only', false) -%}{{ return(reprocess_from_ts()) }}{%- endif -%}
  {%- set sql -%}
    with
    stitched_cuts as ({{ stitched_cuts_cte() }}),
    cuts as ({{ user_reprocess_cuts(sessions_relation) }})
    select min(cut_at) as earliest_cut_at from cuts
  {%- endset -%}
  {%- set earliest = run_query(sql).columns[0].values()[0] -%}
  {%- if earliest is none -%}{{ return(reprocess_from_ts()) }}{%- endif -%}
  {{ return('least(' ~ reprocess_from_ts() ~ ", cast('" ~ earliest ~ "' as "
      ~ dbt.type_timestamp() ~ '))') }}
{%- endmacro %}

{#
  A literal no later than any anonymous event of an id first identified in this window (the
  identity map's first_anonymous_at), looked up when the model runs: int_events_stitched's
  scan of the older anonymous history then skips the row groups before it. Without such ids,
  reprocess_from (the older history adds nothing). At parse time (and for sqlfluff):
  reprocess_from.
#}
{% macro anonymous_history_from_ts() -%}
  {%- if not execute or var('lint_only', false) -%}{{ return(reprocess_from_ts()) }}{%- endif -%}
  {%- set sql -%}
    select min(first_anonymous_at) from {{ ref('int_identity_map') }}
    where first_identified_at >= {{ reprocess_from_ts() }}
  {%- endset -%}
  {%- set earliest = run_query(sql).columns[0].values()[0] -%}
  {%- if earliest is none -%}{{ return(reprocess_from_ts()) }}{%- endif -%}
  {{ return("cast('" ~ earliest ~ "' as " ~ dbt.type_timestamp() ~ ')') }}
{%- endmacro %}

{#
  incremental_predicates / narrow_predicates of a model rebuilt from each user's cut
  (int_sessions, int_user_activity_daily): the stored rows replaced are those in the window
  (narrow: only of the users identified in it) plus, per user, every row from that user's
  earliest rebuilt `column` on.
#}
{% macro user_cut_predicates(column, window_start, narrow=false) -%}
  {%- set in_window = column ~ " >= " ~ window_start -%}
  {%- if narrow -%}
    {%- set in_window = "(" ~ in_window ~ " and user_id in ("
        ~ window_identified_users_predicate(this) ~ "))" -%}
  {%- endif -%}
  {{ return([in_window
      ~ " or exists (select 1 from (select user_id as cut_user_id, min(" ~ column ~ ") as cut_at"
      ~ " from DBT_INTERNAL_SOURCE group by 1) as cuts"
      ~ " where cuts.cut_user_id = user_id and " ~ column ~ " >= cuts.cut_at)"]) }}
{%- endmacro %}
