"""Demo data generator: CRM contacts, Segment-spec events and billing invoices in the landing
layout of docs/contracts.md, plus a hidden ground truth for evaluating the models.

Why it looks like this:
- One day at a time (memory is bounded by one day's events), vectorised with numpy, files
  formatted by DuckDB; deterministic for a seed: the same arguments give byte-identical files.
- Behaviour comes from latent user types (see `demo.saas_model`): weekly seasonality, an ordered
  onboarding funnel from the tracking plan with drop-off by company size / role / channel,
  upgrades tied to feature use, churn as a daily hazard that rises with disengagement.
  Every event name comes from `contracts.tracking_plan.load()`.
- Events (`events/dt=D/events-D.jsonl`) use Segment's camelCase keys (`messageId`, `userId`,
  `anonymousId`, `receivedAt`); page events carry the page `name`. Visitors browse
  anonymously (only `anonymousId`), then an `identify` at signup links anonymousId to userId.
- CRM contacts (`crm_contacts/dt=D/contacts-D.csv`) are an export of *changed* contacts: a row
  per contact on the day it is created or its plan changes (upgrade, trial expiry,
  cancellation), so a contact appears on several days; staging keeps the latest per user.
- Invoices (`billing_invoices/dt=D/invoices-D.parquet`): a monthly invoice per paid user from
  the upgrade day, amount by plan and company size in the contact's currency.
- Ground truth goes to `truth_dir` only (never under `out_dir`): `truth_weekly.parquet` (per
  user per Monday: true 28-day churn and conversion probabilities, expected 90-day revenue),
  `truth_users.parquet`, and `defects.parquet`, the manifest of injected defects.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from demo import saas_model as m
from demo.saas_day import simulate_day
from demo.saas_sim import (
    CANCEL_REASONS,
    DEFAULT_HISTORY_DAYS,
    EVENT_TYPES,
    TABLE_DIRS,
    TICKET_CATEGORIES,
    TICKET_PRIORITIES,
    DemoSummary,
    Simulation,
    day_start_us,
)
from demo.saas_write import truth_for_day, write_day, write_truth

__all__ = ["DEFAULT_HISTORY_DAYS", "TABLE_DIRS", "DemoSummary", "generate", "run_days"]


def generate(
    out_dir: Path,
    truth_dir: Path,
    users: int,
    days: int,
    seed: int,
    start: date,
    defect_rate: float = 0.0,
    late_window_days: int = 3,
    history_days: int = DEFAULT_HISTORY_DAYS,
    horizon_days: int = 28,
    oracle_replicas: int = 0,
    conversion_days: int = 28,
    ltv_days: int = 90,
) -> DemoSummary:
    """Write `days` daily partitions starting at `start` for `users` users into `out_dir` (landing
    layout) and the ground truth into `truth_dir`. Existing table folders under `out_dir` are
    replaced so the folder always holds exactly one generated data set.

    The product is in steady state on the first day: the simulation starts `history_days`
    earlier (signups spread over history and window alike), those days are simulated but not
    written, and the first written day carries a CRM export of every contact that already
    exists, as a company connecting segflow to a live product would have.

    With `oracle_replicas` > 0 the weekly truth also holds `p_cancel_<horizon_days>d` and
    `p_inactive_<horizon_days>d`, Monte Carlo estimates from that many simulated futures per
    user (`demo.saas_oracle`; seconds per 1,000 users and snapshot at 200). The truth's
    conversion probability and expected revenue cover `conversion_days` / `ltv_days`
    (names from demo.truth_columns)."""
    t0 = time.perf_counter()
    out_dir, truth_dir = Path(out_dir).resolve(), Path(truth_dir).resolve()
    if truth_dir == out_dir or out_dir in truth_dir.parents:
        raise ValueError(
            f"truth_dir {truth_dir} must not be inside out_dir {out_dir}: "
            "the pipeline reads out_dir and must never see the ground truth"
        )
    if users < 1 or days < 1 or history_days < 0:
        raise ValueError(
            f"users={users}, days={days}, history_days={history_days}: "
            "users and days must be >= 1, history_days >= 0"
        )
    if not 0.0 <= defect_rate < 0.5:
        raise ValueError(f"defect_rate={defect_rate}: expected 0 <= rate < 0.5")
    for table in TABLE_DIRS:
        shutil.rmtree(out_dir / table, ignore_errors=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    sim = Simulation(
        users,
        history_days + days,
        seed,
        start - timedelta(days=history_days),
        defect_rate,
        late_window_days,
    )
    sim.horizon_days, sim.oracle_replicas = horizon_days, oracle_replicas
    sim.conversion_days, sim.ltv_days = conversion_days, ltv_days
    summary = DemoSummary(
        out_dir,
        truth_dir,
        users,
        days,
        seed,
        start,
        start + timedelta(days=days - 1),
        defect_rate,
        history_days,
        rows=dict.fromkeys(TABLE_DIRS, 0),
    )
    defects: list[dict] = []
    truth_parts: list[pd.DataFrame] = []
    run_days(
        sim, history_days, history_days + days, lambda d: out_dir, defects, summary, truth_parts
    )
    write_truth(sim, truth_dir, truth_parts, defects)
    summary.defects = pd.Series([x["kind"] for x in defects], dtype=object).value_counts().to_dict()
    summary.elapsed_seconds = time.perf_counter() - t0
    return summary


def run_days(
    sim: Simulation,
    history_days: int,
    total_days: int,
    out_dir_for: Callable[[int], Path],
    defects: list[dict],
    summary: DemoSummary,
    truth_parts: list[pd.DataFrame] | None = None,
) -> None:
    """Simulate days 0 .. total_days-1; write every day from `history_days` on into
    `out_dir_for(d)`. The first written day also exports every contact that already exists.
    Every day consumes the random stream the same way, so a replay reproduces the files."""
    conn = duckdb.connect()
    conn.execute("set threads = 2")
    conn.register("demo_users_arrow", sim.users_table())
    conn.execute("create table demo_users as select * from demo_users_arrow")
    conn.unregister("demo_users_arrow")
    params = {
        "types": list(EVENT_TYPES),
        "names": sim.names.all,
        "plans": list(m.PLANS),
        "paths": sim.names.paths,
        "reasons": list(CANCEL_REASONS),
        "priorities": list(TICKET_PRIORITIES),
        "categories": list(TICKET_CATEGORIES),
    }
    carried: list[tuple[str, dict]] = []
    for d in range(total_days):
        day = sim.start + timedelta(days=d)
        existing = np.flatnonzero(sim.signed) if d == history_days and d > 0 else None
        contacts, invoices, events = simulate_day(sim, d, day)
        if d < history_days:
            continue
        if existing is not None and contacts is not None:  # one row per contact that day
            existing = existing[~np.isin(existing, contacts["pos"].to_numpy())]
        if existing is not None and len(existing):
            snapshot = sim.contact_rows(existing, np.full(len(existing), day_start_us(day)))
            contacts = pd.concat([snapshot, contacts], ignore_index=True)
        carried = write_day(
            sim,
            conn,
            params,
            out_dir_for(d),
            d,
            day,
            contacts,
            invoices,
            events,
            carried,
            defects,
            summary,
        )
        if truth_parts is not None and day.weekday() == 0:
            truth_parts.append(truth_for_day(sim, d, day))
    conn.close()
