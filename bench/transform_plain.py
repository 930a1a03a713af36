"""The plain-DuckDB side of bench/transform.py: a hand-written script computing the same
core tables as the dbt project (de-duplicated events, identity map, stitched events, sessions,
daily activity, and fct_user_features' 87 columns per user per day, the same rows and values),
to compare CPU seconds. Hand-written the plain-DuckDB way: hash aggregates, one sort for
sessions, a dense user x day grid with named window frames for the features."""

from __future__ import annotations

from contracts import tracking_plan

# The plain-DuckDB way: hash aggregates where possible, one sort for sessions (lag/lead and
# running counts in one window pass, then the boundary rows), one for active minutes, and a
# dense user x day grid with rolling frames for the features (below).
BASELINE_SQL = """
create or replace table plain_events as
with dup as (select hash(message_id) as h from raw.events where message_id is not null
             group by 1 having count(*) > 1)
select message_id, lower(type) as event_type, event as event_name,
       nullif(trim(user_id), '') as user_id, nullif(trim(anonymous_id), '') as anonymous_id,
       "timestamp" as event_at, _partition_date as partition_date
from raw.events e where message_id is not null and hash(message_id) not in (select h from dup)
union all
select * from (
  select message_id, lower(type), event, nullif(trim(user_id), ''), nullif(trim(anonymous_id), ''),
         "timestamp", _partition_date
  from raw.events e where message_id is not null and hash(message_id) in (select h from dup)
  qualify row_number() over (partition by message_id order by received_at, _partition_date,
                             _source_file, _source_line, "timestamp") = 1);

create or replace table plain_identity as
select anonymous_id, arg_min(user_id, (event_at, message_id)) as user_id,
       min(event_at) as first_identified_at
from plain_events where anonymous_id is not null and user_id is not null group by 1;

create or replace table plain_stitched as
select e.message_id, coalesce(e.user_id, i.user_id) as user_id, e.event_type, e.event_name,
       e.event_at
from plain_events e left join plain_identity i
  on e.user_id is null and e.anonymous_id = i.anonymous_id
where coalesce(e.user_id, i.user_id) is not null;

create or replace table plain_event_gaps as
select user_id, message_id, event_at, event_at::date as d, event_type, event_name,
       lag(event_at) over w as prev_at, lead(event_at) over w as next_at,
       count(*) over (w rows unbounded preceding) as n_so_far
from plain_stitched window w as (partition by user_id order by event_at, message_id);

create or replace table plain_sessions as
with b as (
  select *, prev_at is null or date_diff('second', prev_at, event_at) > 1800 as is_start,
            next_at is null or date_diff('second', event_at, next_at) > 1800 as is_end
  from plain_event_gaps
  where prev_at is null or next_at is null or date_diff('second', prev_at, event_at) > 1800
     or date_diff('second', event_at, next_at) > 1800),
p as (
  select user_id, is_start, event_at as session_start, n_so_far - 1 as n_before,
         case when is_end then event_at else lead(event_at) over nb end as session_end,
         case when is_end then n_so_far else lead(n_so_far) over nb end as n_end
  from b window nb as (partition by user_id order by event_at, message_id))
select user_id, session_start, session_end, session_start::date as session_date,
       date_diff('second', session_start, session_end) / 60.0 as duration_minutes,
       n_end - n_before as event_count
from p where is_start;

"""


def _in(names: tuple[str, ...]) -> str:
    return "(" + ", ".join("'" + n.replace("'", "''") + "'" for n in names) + ")"


def _daily_sql(plan: tracking_plan.TrackingPlan) -> str:
    """Per user and active day: the counts the features roll up (one hash aggregate)."""
    track = "event_type = 'track' and event_name"
    counts = [f"count(*) filter (where {track} in {_in(plan.core_features)}) as core"]
    counts += [
        f"count(*) filter (where {track} = '{e}') as f_{tracking_plan.event_slug(e)}"
        for e in plan.core_features
    ]
    counts += [
        f"count(*) filter (where {track} in {_in(ev)}) as m_{m}" for m, ev in plan.milestones
    ]
    counts += [
        f"count(*) filter (where {track} in {_in(plan.support_events)}) as support",
        f"count(*) filter (where {track} in {_in(plan.cancel_events)}) as cancels",
    ]
    return f"""
create or replace table plain_daily as
with e as (
  select user_id, d as activity_date, count(*) as events,
         count(*) filter (where event_type = 'page') as page_views,
         {", ".join(counts)},
         sum(case when date_diff('second', prev_at, event_at) <= 1800
                  then date_diff('second', prev_at, event_at) / 60.0 else 0 end) as active_minutes
  from plain_event_gaps group by 1, 2),
s as (select user_id, session_date as activity_date, count(*) as sessions_started
      from plain_sessions group by 1, 2)
select e.*, coalesce(s.sessions_started, 0) as sessions_started
from e left join s using (user_id, activity_date);
"""


CRM_AND_BILLING_SQL = """
create or replace table plain_contacts as
select *, lead(valid_from) over (partition by user_id order by valid_from) as valid_to
from (
  select trim(user_id) as user_id, cast(signup_at as date) as signup_date,
         lower(trim(plan)) as plan, nullif(trim(industry), '') as industry,
         nullif(trim(company_size), '') as company_size, nullif(upper(trim(country)), '') as country,
         nullif(trim(role), '') as role, nullif(trim(acquisition_channel), '') as acquisition_channel,
         cast(updated_at as date) as valid_from
  from raw.crm_contacts where trim(user_id) <> ''
  qualify row_number() over (partition by trim(user_id), cast(updated_at as date)
      order by updated_at desc, _loaded_at desc, _source_file desc, _source_line desc) = 1);

create or replace table plain_invoices as
select * exclude (is_revenue) from (
  select trim(user_id) as user_id, cast(paid_at as date) as paid_date,
         amount::double * $rate as usd,
         amount::double * $rate * 30.0 / case when date_diff('day', period_start::timestamp,
             period_end::timestamp) > 0 then date_diff('day', period_start::timestamp,
             period_end::timestamp) else 30 end as monthly_usd,
         cast(period_start as date) as period_start, cast(period_end as date) as period_end,
         lower(status) in ('paid', 'refunded') and paid_at is not null as is_revenue
  from raw.billing_invoices where invoice_id is not null
  qualify row_number() over (partition by invoice_id
      order by _partition_date desc, _loaded_at desc, _source_file desc, _source_line desc) = 1)
where is_revenue;
"""


def _rolled_sql(plan: tracking_plan.TrackingPlan) -> str:
    """The dense user x day grid and its window frames (one sort)."""
    slugs = [tracking_plan.event_slug(e) for e in plan.core_features]
    zeros = ["core", "support", "cancels", *(f"f_{x}" for x in slugs)]
    zeros += [f"m_{m}" for m in plan.milestone_names]
    dense = ", ".join(f"coalesce(a.{c}, 0) as {c}" for c in zeros)
    windows = [
        f"sum(f_{x}) over w7 as f_{x}_7d, sum(f_{x}) over w28 as f_{x}_28d, "
        f"coalesce(sum(f_{x}) over wprev, 0) as f_{x}_prev"
        for x in slugs
    ]
    windows += [f"sum(m_{m}) over wall as {c}" for c, m in plan.milestone_counters]
    windows += [
        f"min(case when m_{m} > 0 then snapshot_date end) over wall as first_{m}"
        for m in plan.milestone_names
    ]
    return f"""
create or replace table plain_rolled as
with firsts as (
  select user_id, min(first_date) as first_date from (
    select user_id, min(activity_date) as first_date from plain_daily group by 1
    union all
    select user_id, min(least(signup_date, valid_from)) from plain_contacts group by 1) group by 1),
data_end as (select max(activity_date) as last_date from plain_daily),
grid as (
  select f.user_id, unnest(generate_series(f.first_date, d.last_date, interval 1 day))::date
         as snapshot_date
  from firsts f, data_end d),
rev as (select user_id, paid_date, sum(usd) as revenue, count(*) as purchases,
               max(period_end) as paid_through from plain_invoices group by 1, 2),
dense as (
  select g.user_id, g.snapshot_date, (a.user_id is not null)::int as active,
         coalesce(a.events, 0) as events, coalesce(a.sessions_started, 0) as sessions,
         coalesce(a.active_minutes, 0) as active_minutes, {dense},
         coalesce(r.revenue, 0) as revenue, coalesce(r.purchases, 0) as purchases, r.paid_through
  from grid g
  left join plain_daily a on a.user_id = g.user_id and a.activity_date = g.snapshot_date
  left join rev r on r.user_id = g.user_id and r.paid_date = g.snapshot_date)
select user_id, snapshot_date,
       sum(active) over w7 as a7, sum(active) over w28 as a28,
       sum(events) over w7 as e7, sum(events) over w28 as e28,
       coalesce(sum(events) over wprev, 0) as eprev,
       sum(sessions) over w7 as s7, sum(sessions) over w28 as s28,
       sum(active_minutes) over w28 as minutes28, sum(core) over w28 as depth28,
       sum(support) over w28 as support28, sum(support) over wall as support_total,
       sum(active) over wall as active_total,
       min(case when active = 1 then snapshot_date end) over wall as first_active,
       max(case when active = 1 then snapshot_date end) over wall as last_active,
       max(case when cancels > 0 then snapshot_date end) over wall as last_cancel,
       sum(purchases) over wall as purchases_total,
       min(case when purchases > 0 then snapshot_date end) over wall as first_purchase,
       max(case when purchases > 0 then snapshot_date end) over wall as last_purchase,
       max(paid_through) over wall as paid_through, sum(revenue) over wall as revenue_total,
       {", ".join(windows)}
from dense
window w7 as (partition by user_id order by snapshot_date rows 6 preceding),
       w28 as (partition by user_id order by snapshot_date rows 27 preceding),
       wprev as (partition by user_id order by snapshot_date
                 rows between 13 preceding and 7 preceding),
       wall as (partition by user_id order by snapshot_date rows unbounded preceding);
"""


def _features_sql(plan: tracking_plan.TrackingPlan, vars_: dict) -> str:
    """fct_user_features' 87 columns, in its order, from the rolled grid + CRM + MRR."""
    slugs = [tracking_plan.event_slug(e) for e in plan.core_features]
    names = plan.milestone_names
    value = vars_.get("value_milestone", names[-1])
    dsla = (
        "coalesce(date_diff('day', last_active, snapshot_date), "
        "date_diff('day', signup_date, snapshot_date))"
    )
    span = "date_diff('day', first_active, last_active)"
    reached = " + ".join(f"(first_{m} is not null)::int" for m in names)
    cancelled = (
        f"coalesce((last_cancel is not null and (last_purchase is null or "
        f"last_purchase <= last_cancel)) or paid_through + interval "
        f"{int(vars_['cancel_grace_days'])} day < snapshot_date, false)"
    )
    inactive = f"{dsla} >= {int(vars_['churn_window_days'])}"
    churned = cancelled if vars_["churn_definition"] == "cancellation" else inactive
    per_feature = ", ".join(
        f"f_{x}_7d::int as evt_{x}_7d, f_{x}_28d::int as evt_{x}_28d, "
        f"(f_{x}_7d - f_{x}_prev)::int as evt_{x}_change_7d, "
        f"case when e28 > 0 then f_{x}_28d * 1.0 / e28 else 0.0 end as evt_{x}_share_28d"
        for x in slugs
    )
    return f"""
create or replace table plain_features as
with snap as (
  select r.*, c.signup_date, c.plan, c.industry, c.company_size, c.country, c.role,
         c.acquisition_channel
  from plain_rolled r join plain_contacts c
    on c.user_id = r.user_id and r.snapshot_date >= c.valid_from
   and (c.valid_to is null or r.snapshot_date < c.valid_to)
  where r.snapshot_date >= c.signup_date),
mrr as (
  select s.user_id as mrr_user_id, s.snapshot_date as mrr_date, sum(i.monthly_usd) as mrr
  from snap s join plain_invoices i
    on i.user_id = s.user_id and s.snapshot_date >= i.paid_date
   and s.snapshot_date >= i.period_start and s.snapshot_date < i.period_end
  group by 1, 2)
select s.user_id, s.snapshot_date, signup_date,
       date_diff('day', signup_date, s.snapshot_date)::int as days_since_signup,
       {dsla}::int as days_since_last_active,
       date_diff('day', first_active, s.snapshot_date)::int as days_since_first_active,
       active_total::int as active_days_total,
       case when active_total > 1 then {span} * 1.0 / (active_total - 1) end
         as mean_active_gap_days,
       case when active_total > 1 and {span} > 0
            then {dsla} * (active_total - 1.0) / {span} end as recency_ratio,
       purchases_total::int as purchases_total,
       date_diff('day', first_purchase, s.snapshot_date)::int as days_since_first_purchase,
       date_diff('day', last_purchase, s.snapshot_date)::int as days_since_last_purchase,
       case when purchases_total > 0 then revenue_total / purchases_total else 0.0 end
         as avg_order_value,
       case when date_diff('day', signup_date, s.snapshot_date) < 7 then '0-6d'
            when date_diff('day', signup_date, s.snapshot_date) < 28 then '7-27d'
            when date_diff('day', signup_date, s.snapshot_date) < 90 then '28-89d'
            when date_diff('day', signup_date, s.snapshot_date) < 365 then '90-364d'
            else '365d+' end as tenure_bucket,
       date_diff('day', signup_date, s.snapshot_date) < {int(vars_["new_account_days"])}
         as is_new_account,
       a7::int as active_days_7d, a28::int as active_days_28d, e7::int as events_7d,
       e28::int as events_28d, s7::int as sessions_7d, s28::int as sessions_28d,
       case when s28 > 0 then minutes28 / s28 else 0.0 end as avg_session_minutes_28d,
       ({" + ".join(f"(f_{x}_28d > 0)::int" for x in slugs)})::int as feature_breadth_28d,
       depth28::int as feature_depth_28d,
       ({reached})::int as milestones_reached,
       ({reached}) / {len(names)}.0 as onboarding_completion,
       {", ".join(f"first_{m} is not null as reached_{m}" for m in names)},
       case when date_diff('day', signup_date, first_{value}) < 0 then 0
            else date_diff('day', signup_date, first_{value}) end::int as days_to_first_value,
       {", ".join(f"{c}::int as {c}" for c in plan.counter_columns)},
       support28::int as support_tickets_28d, support_total::int as support_tickets_total,
       {per_feature},
       eprev::int as events_prev_7d,
       (e7 - eprev) * 1.0 / case when eprev > 1 then eprev else 1 end as activity_trend,
       plan, coalesce(plan in {_in(plan.paid_plans)}, false) as is_paid,
       coalesce(mrr.mrr, 0.0) as mrr, revenue_total::double as revenue_to_date,
       industry, company_size, country, role, acquisition_channel,
       a28 > 0 as is_active_28d, {inactive} as is_inactive, {cancelled} as is_cancelled,
       {churned} as is_churned
from snap s left join mrr on mrr.mrr_user_id = s.user_id and mrr.mrr_date = s.snapshot_date;
"""


def plain_script(dbt_vars: dict) -> str:
    """The whole plain script for the project's tracking plan and segflow's settings (as dbt
    gets them: orchestration.run_window.dbt_vars, plus dbt_project.yml's own vars). Written
    for the default business events (every event is activity; purchases = paid invoices)."""
    if dbt_vars.get("activity_events") or dbt_vars.get("purchase_source") != "invoices":
        raise ValueError("the plain script covers the default activity/purchase settings only")
    plan = tracking_plan.load()
    rate = (
        "case upper(currency) "
        + " ".join(
            f"when '{code}' then {rate}" for code, rate in dbt_vars["fx_rates_to_usd"].items()
        )
        + " end"
    )
    return (
        BASELINE_SQL
        + _daily_sql(plan)
        + CRM_AND_BILLING_SQL.replace("$rate", f"({rate})")
        + _rolled_sql(plan)
        + _features_sql(plan, dbt_vars)
    )


def features_mismatches(conn, plain_catalog: str, before: str) -> dict:
    """Rows of dbt's fct_user_features and the plain script's features that differ (doubles
    within 1e-9) or exist on one side only, for snapshot dates before `before` (ISO date):
    the check that the plain script did the same work."""
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'main' and table_name = 'fct_user_features' "
        "and table_catalog = current_database() order by ordinal_position"
    ).fetchall()
    same = " and ".join(
        f"(f.{c} is not distinct from p.{c}"
        + (f" or abs(f.{c} - p.{c}) < 1e-9)" if kind == "DOUBLE" else ")")
        for c, kind in columns
    )
    cut = f"snapshot_date < date '{before}'"
    row = conn.execute(
        f"""
        select count(*) filter (where p.user_id is null),
               count(*) filter (where f.user_id is null),
               count(*) filter (where f.user_id is not null and p.user_id is not null
                                and not ({same}))
        from (select * from main.fct_user_features where {cut}) f
        full join (select * from {plain_catalog}.main.plain_features where {cut}) p
          on f.user_id = p.user_id and f.snapshot_date = p.snapshot_date"""
    ).fetchone()
    return {"dbt_only": row[0], "plain_only": row[1], "different": row[2]}
