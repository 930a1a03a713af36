"""Every cent and every event, across layers: blocking reconciliations read from the warehouse.

Revenue, per paid day and in total (a difference beyond RATE_TOLERANCE names the invoices):
- raw -> staging: the paid amount of each invoice's latest raw row (status paid / refunded,
  the row staging keeps) equals its amount in `stg_billing__invoices` where `is_revenue`;
- staging -> features: for each snapshot day, each customer's `revenue_to_date` in
  `fct_user_features` equals the staged revenue paid to that customer up to that day
  (a paid invoice whose customer has no feature row that day has left revenue, unless the
  customer's first CRM version is valid only from a later day: features are point in time).
Events, per event day: raw -> staging (duplicate message ids) -> stitched (anonymous visitors
never identified) -> daily activity; every dropped row is accounted for by reason, and a drop
no reason explains fails.

Plain SQL over DuckDB; the Dagster wiring turns the `SuiteResult` into an asset check.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import duckdb

from contracts.raw import REVENUE_STATUSES
from expectations.outcome import CheckOutcome, SuiteResult

TOLERANCE = 0.01  # currency units: rounding of sums of doubles (exact_sum keeps cents)
NAMED = 20  # invoices / days named in a failure


def _exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        conn.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def _outcome(check: str, table: str, passed: bool, expected: str, message: str, **kw):
    return CheckOutcome(
        check=check,
        table=table,
        column=None,
        expectation=check.split(".")[-1],
        severity="error",
        passed=passed,
        expected=expected,
        message=("ok " if passed else "FAILED ") + message,
        **kw,
    )


_RAW_PAID = """
    select invoice_id, cast(amount as double) as amount,
           coalesce(cast(paid_at as date), _partition_date) as paid_date
    from raw.billing_invoices
    where invoice_id is not null
    qualify row_number() over (partition by invoice_id order by _partition_date desc,
        _loaded_at desc, _source_file desc, _source_line desc) = 1
      and lower(status) in (select unnest($statuses))"""


def raw_to_staging(conn: duckdb.DuckDBPyConnection, dates: Sequence[date]) -> CheckOutcome:
    """Paid amount per invoice: the latest raw row vs staging's revenue rows."""
    rows = conn.execute(
        f"""with raw as ({_RAW_PAID}),
        stg as (select invoice_id, amount, paid_date from main.stg_billing__invoices
                where is_revenue)
        select coalesce(raw.invoice_id, stg.invoice_id) as invoice_id,
               coalesce(raw.paid_date, stg.paid_date) as paid_date,
               raw.amount as raw_amount, stg.amount as stg_amount
        from raw full join stg on raw.invoice_id = stg.invoice_id
        where list_contains($days, coalesce(raw.paid_date, stg.paid_date))
        order by paid_date, invoice_id""",
        {"statuses": list(REVENUE_STATUSES), "days": list(dates)},
    ).fetchall()
    per_day: dict[date, list[float]] = {}
    off = []
    for invoice, day, raw_amount, stg_amount in rows:
        sums = per_day.setdefault(day, [0.0, 0.0])
        sums[0] += raw_amount or 0.0
        sums[1] += stg_amount or 0.0
        if abs((raw_amount or 0.0) - (stg_amount or 0.0)) > TOLERANCE:
            off.append(
                {
                    "invoice_id": invoice,
                    "paid_date": str(day),
                    "raw_paid_amount": raw_amount,
                    "staging_revenue": stg_amount,
                }
            )
    raw_total = sum(s[0] for s in per_day.values())
    stg_total = sum(s[1] for s in per_day.values())
    days_off = [d for d, (a, b) in sorted(per_day.items()) if abs(a - b) > TOLERANCE]
    named = ", ".join(f"{o['invoice_id']} ({o['paid_date']})" for o in off[:NAMED])
    return _outcome(
        "billing_invoices.revenue.raw_to_staging",
        "main.stg_billing__invoices",
        not off,
        "paid amount in raw.billing_invoices = paid revenue in stg_billing__invoices, per "
        "invoice, per paid day and in total",
        f"raw paid {raw_total:.2f} vs staging revenue {stg_total:.2f} over {len(per_day)} "
        "paid day(s)"
        + (f"; {len(off)} invoice(s) differ on {len(days_off)} day(s): {named}" if off else ""),
        unexpected_count=len(off),
        sample_unexpected=off[:NAMED],
        observed_value={
            "raw_paid": round(raw_total, 2),
            "staging_revenue": round(stg_total, 2),
            "per_day": {str(d): [round(a, 2), round(b, 2)] for d, (a, b) in per_day.items()},
        },
        partitions=[str(d) for d in dates],
    )


# The invoices behind a customer-day are listed only where the amounts differ (a handful),
# not for every payer (a list per customer per day cost as much as the comparison itself).
_STAGED_VS_FEATURES = """
    with days as (select distinct snapshot_date from main.fct_user_features
                  where list_contains($days, snapshot_date)),
    stg as (select d.snapshot_date, i.user_id, sum(i.amount_usd) as revenue
            from days d join main.stg_billing__invoices i
              on i.is_revenue and i.paid_date <= d.snapshot_date
            group by all),
    fct as (select f.snapshot_date, f.user_id, f.revenue_to_date
            from main.fct_user_features f join days using (snapshot_date)),
    crm as (select user_id, min(valid_from_date) as crm_from
            from main.stg_crm__contact_snapshots group by 1),
    compared as (
        select coalesce(stg.snapshot_date, fct.snapshot_date) as day,
               coalesce(stg.user_id, fct.user_id) as user_id,
               coalesce(stg.revenue, 0) as staged, fct.revenue_to_date as features
        from stg full join fct
          on stg.snapshot_date = fct.snapshot_date and stg.user_id = fct.user_id),
    differing as (select day, user_id from compared
                  where not abs(staged - coalesce(features, 0)) <= $tolerance),
    invoices as (
        select d.day, d.user_id, list(i.invoice_id order by i.paid_date, i.invoice_id) as ids
        from differing d join main.stg_billing__invoices i
          on i.is_revenue and i.paid_date <= d.day and i.user_id = d.user_id
        group by all)
    select c.day, c.user_id, c.staged, c.features, coalesce(v.ids, []) as invoices, crm.crm_from
    from compared c
    left join invoices v on v.day = c.day and v.user_id = c.user_id
    left join crm on crm.user_id = c.user_id
    order by c.day, c.user_id"""


def _customer_day(day, user, staged, features, invoices, crm_from) -> tuple[dict | None, bool]:
    """One customer-day that differs (or None), and whether a reason explains it: features are
    point in time, so a payer whose first CRM version is valid only from a later day has no
    feature row before it (the revenue is in revenue_to_date from that day on, which the
    later days check). A payer with no CRM version at all has left revenue."""
    if abs(staged - (features or 0.0)) <= TOLERANCE:
        return None, False
    later = features is None and crm_from is not None and crm_from > day
    why = (
        f"customer's first CRM version is valid from {crm_from}"
        if later
        else "no feature row for this customer that day"
        if features is None
        else "amounts differ"
    )
    return {
        "snapshot_date": str(day),
        "user_id": user,
        "staged_revenue_to_date": round(staged, 2),
        "features_revenue_to_date": features,
        "why": why,
        "invoices": invoices[:NAMED],
    }, later


def staging_to_features(conn: duckdb.DuckDBPyConnection, dates: Sequence[date]) -> CheckOutcome:
    """Per snapshot day and customer: revenue_to_date = staged revenue paid up to that day
    (a payer not yet in the CRM that day is explained, see `_customer_day`)."""
    rows = conn.execute(
        _STAGED_VS_FEATURES, {"days": list(dates), "tolerance": TOLERANCE}
    ).fetchall()
    per_day: dict[date, list[float]] = {}
    off, explained = [], []
    for day, user, staged, features, invoices, crm_from in rows:
        sums = per_day.setdefault(day, [0.0, 0.0])
        sums[0] += staged
        sums[1] += features or 0.0
        found, later = _customer_day(day, user, staged, features, invoices, crm_from)
        if found:
            (explained if later else off).append(found)
    named = "; ".join(
        f"{o['snapshot_date']} {o['user_id']}: staged {o['staged_revenue_to_date']} vs "
        f"features {o['features_revenue_to_date']} ({o['why']}; invoices "
        f"{', '.join(o['invoices'][:5])})"
        for o in off[:5]
    )
    last = max(per_day) if per_day else None
    return _outcome(
        "billing_invoices.revenue.staging_to_features",
        "main.fct_user_features",
        not off,
        "staged revenue paid up to each snapshot day = sum of revenue_to_date that day, per "
        "customer (payers not yet in the CRM that day explained)",
        (
            f"on {last}: staged {per_day[last][0]:.2f} vs features {per_day[last][1]:.2f} "
            f"({len(per_day)} snapshot day(s))"
            if last
            else "no snapshot day in the window"
        )
        + (f"; {len(off)} customer-day(s) differ: {named}" if off else "")
        + (
            f"; {len(explained)} customer-day(s) before the payer's first CRM version"
            if explained
            else ""
        ),
        unexpected_count=len(off),
        sample_unexpected=off[:NAMED],
        observed_value={
            "per_day": {str(d): [round(a, 2), round(b, 2)] for d, (a, b) in per_day.items()},
            "explained": explained[:NAMED],
        },
        partitions=[str(d) for d in dates],
    )


# A raw event's staged row is looked up near its day first (+- NEAR_DAYS, row groups pruned),
# and in all of staging only for the ids not found there (none, usually): the same rows as
# one lookup over every staged message id (24M at 100k users x 180 days) for a tenth of it.
NEAR_DAYS = 7
_EVENT_LAYERS = """
    with days as (select unnest($days::date[]) as d),
    raw as (select message_id, cast("timestamp" as date) as d from raw.events
            where message_id is not null and list_contains($days, cast("timestamp" as date))
              and "timestamp" >= timestamp '{first}' and "timestamp" < timestamp '{after}'),
    stg as (select message_id, event_date as d, user_id, anonymous_id
            from main.stg_events__events where list_contains($days, event_date)),
    near as (select message_id, event_date from main.stg_events__events
             where event_date between date '{near_first}' and date '{near_last}'
               and message_id in (select message_id from raw)),
    kept_ids as (select * from near union all
                 select message_id, event_date from main.stg_events__events
                 where message_id in (select message_id from raw
                                      where message_id not in (select message_id from near))),
    raw_counts as (
        select raw.d, count(*) as raw_rows,
               count(distinct case when k.event_date = raw.d then raw.message_id end) as kept,
               count(*) filter (where k.message_id is null) as lost,
               list(distinct raw.message_id) filter (where k.message_id is null) as lost_ids
        from raw left join kept_ids k using (message_id) group by 1),
    stg_counts as (
        select d, count(*) as stg_rows,
               count(*) filter (where user_id is null and anonymous_id not in
                   (select anonymous_id from main.int_identity_map where anonymous_id is not null)
                   or user_id is null and anonymous_id is null) as unidentified
        from stg group by 1),
    stitched as (select event_date as d, count(*) as stitched_rows from main.int_events_stitched
                 where list_contains($days, event_date) group by 1),
    daily as (select activity_date as d, sum(events) as daily_events
              from main.int_user_activity_daily where list_contains($days, activity_date)
              group by 1)
    select days.d, coalesce(raw_rows, 0), coalesce(raw_rows - kept - lost, 0),
           coalesce(lost, 0), coalesce(lost_ids, []), coalesce(stg_rows, 0),
           coalesce(unidentified, 0), coalesce(stitched_rows, 0), coalesce(daily_events, 0)
    from days left join raw_counts using (d) left join stg_counts using (d)
    left join stitched using (d) left join daily using (d) order by 1"""


def _event_day(row: tuple) -> dict:
    day, raw, dup, lost, lost_ids, stg, unidentified, stitched, daily = row
    problems = []
    if lost:
        problems.append(f"{lost} raw event(s) missing from staging: {', '.join(lost_ids[:5])}")
    if raw - dup - lost != stg:
        problems.append(f"raw {raw} - duplicates {dup} - lost {lost} != staging {stg}")
    if stg - unidentified != stitched:
        problems.append(f"staging {stg} - never identified {unidentified} != stitched {stitched}")
    if stitched != daily:
        problems.append(f"stitched {stitched} != daily activity events {daily}")
    return {
        "date": str(day),
        "raw": raw,
        "dropped_duplicate": dup,
        "staging": stg,
        "dropped_unidentified_anonymous": unidentified,
        "stitched": stitched,
        "daily_activity": daily,
        "problems": problems,
    }


def check_event_counts(conn: duckdb.DuckDBPyConnection, dates: Sequence[date]) -> CheckOutcome:
    """raw -> staging -> stitched -> daily activity per event day; every drop has a reason."""
    first, last = (min(dates), max(dates)) if dates else (date(1970, 1, 1),) * 2
    sql = _EVENT_LAYERS.format(
        first=first,
        after=last + timedelta(days=1),
        near_first=first - timedelta(days=NEAR_DAYS),
        near_last=last + timedelta(days=NEAR_DAYS),
    )
    days = [_event_day(r) for r in conn.execute(sql, {"days": list(dates)}).fetchall()]
    off = [d for d in days if d["problems"]]
    totals = {
        k: sum(d[k] for d in days)
        for k in (
            "raw",
            "dropped_duplicate",
            "staging",
            "dropped_unidentified_anonymous",
            "stitched",
            "daily_activity",
        )
    }
    return _outcome(
        "events.counts.raw_to_daily_activity",
        "main.int_user_activity_daily",
        not off,
        "raw events - duplicates = staging; staging - never-identified anonymous = stitched = "
        "daily activity events, per event day",
        ", ".join(f"{k} {v}" for k, v in totals.items())
        + (
            "; " + "; ".join(f"{d['date']}: {', '.join(d['problems'])}" for d in off[:5])
            if off
            else ""
        ),
        unexpected_count=len(off),
        sample_unexpected=off[:NAMED],
        observed_value={"totals": totals, "per_day": days},
        partitions=[str(d) for d in dates],
    )


def check_layers(conn: duckdb.DuckDBPyConnection, dates: Sequence[date]) -> SuiteResult:
    """The revenue and event reconciliations for the run's days (a missing layer is
    skipped)."""
    days = sorted(set(dates))
    outcomes = []
    if _exists(conn, "raw", "billing_invoices") and _exists(conn, "main", "stg_billing__invoices"):
        outcomes.append(raw_to_staging(conn, days))
    if _exists(conn, "main", "fct_user_features") and _exists(
        conn, "main", "stg_billing__invoices"
    ):
        outcomes.append(staging_to_features(conn, days))
    layers = ("stg_events__events", "int_events_stitched", "int_user_activity_daily")
    if _exists(conn, "raw", "events") and all(_exists(conn, "main", t) for t in layers):
        outcomes.append(check_event_counts(conn, days))
    return SuiteResult(
        "layer_reconciliation",
        "main.fct_user_features",
        days,
        len(days),
        outcomes,
        None,
        datetime.now(UTC).replace(tzinfo=None),
    )
