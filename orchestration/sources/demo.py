"""Demo data generator: CRM contacts, Segment-spec events and billing invoices in the landing
layout of docs/contracts.md, plus a hidden ground truth for evaluating the models.

Why it looks like this:
- One day at a time (memory is bounded by one day's events), vectorised with numpy, files
  formatted by DuckDB; deterministic for a seed: the same arguments give byte-identical files.
- Behaviour comes from latent user types (see `demo_model`): weekly seasonality, an ordered
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
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from contracts import tracking_plan
from orchestration.sources import demo_model as m
from orchestration.sources import demo_output as out

TABLE_DIRS = ("events", "crm_contacts", "billing_invoices")
PRE_SIGNUP_PAGES = (
    ("Home", "/"),
    ("Pricing", "/pricing"),
    ("Features", "/features"),
    ("Blog", "/blog"),
    ("Sign Up", "/signup"),
)
APP_PAGES = (
    ("Dashboard", "/app/dashboard"),
    ("Projects", "/app/projects"),
    ("Settings", "/app/settings"),
    ("Billing", "/app/billing"),
    ("Reports", "/app/reports"),
)
APP_PATH = "/app"
EVENT_TYPES = ("track", "identify", "page")
TRACK, IDENTIFY, PAGE = range(3)
CANCEL_REASONS = ("too_expensive", "missing_features", "switched_tool", "no_longer_needed")
TICKET_PRIORITIES = ("low", "normal", "high")
TICKET_CATEGORIES = ("billing", "bug", "how_to", "integration", "account")
# Props kinds rendered by demo_output.EVENT_LINE_SQL.
P_GENERIC, P_UPGRADE, P_CANCEL, P_SUPPORT, P_PAGE, P_TRAITS = range(6)
DEFECT_KINDS = (
    "duplicate_same_day",
    "duplicate_next_day",
    "late_within_window",
    "late_beyond_window",
    "malformed_json",
    "null_user_id",
    "null_user_and_anonymous_id",
    "unknown_event",
)
EXPECTED = {
    "duplicate_same_day": "dedupe",
    "duplicate_next_day": "dedupe",
    "late_within_window": "load",
    "late_beyond_window": "quarantine:outside_late_window",
    "malformed_json": "quarantine:malformed_json",
    "null_user_id": "load",
    "null_user_and_anonymous_id": "quarantine:null_key",
    "unknown_event": "quarantine:unknown_event",
    "negative_amount": "quarantine:negative_amount",
}
UNKNOWN_EVENT_NAMES = ("Widget Clicked", "Onboarding Step Viewed")
EPOCH = datetime(1970, 1, 1)
COMPANY_STEMS = np.array(
    [
        "Acme",
        "Globex",
        "Initech",
        "Umbrella",
        "Hooli",
        "Stark",
        "Wayne",
        "Tyrell",
        "Soylent",
        "Cyberdyne",
        "Wonka",
        "Vandelay",
    ]
)
US_PER_DAY = 86_400_000_000
# Days simulated before the first written day, so the window opens on a product in steady state.
DEFAULT_HISTORY_DAYS = 90


@dataclass
class DemoSummary:
    out_dir: Path
    truth_dir: Path
    users: int
    days: int
    seed: int
    start: date
    end: date
    defect_rate: float
    history_days: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    files_written: int = 0
    defects: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.rows.get("events", 0) / max(self.elapsed_seconds, 1e-9)


class _Names:
    """Event name vocabulary, all from the tracking plan (plus page names and defect names)."""

    def __init__(self) -> None:
        plan = tracking_plan.load()
        self.plan = plan
        self.milestone_events = [list(events) for _, events in plan.milestones]
        features = list(dict.fromkeys(plan.core_features + plan.other_events))
        self.features = features
        milestone_level = {e: k for k, events in enumerate(self.milestone_events) for e in events}
        # A feature is usable once its own milestone is reached (the milestone IS its first use);
        # other core features need the first milestone after account creation; other events: always.
        self.unlock_level = np.array(
            [milestone_level.get(f, 1 if f in plan.core_features else -1) for f in features]
        )
        self.core_mask = np.array([f in plan.core_features for f in features])
        pages = [p for p, _ in PRE_SIGNUP_PAGES + APP_PAGES]
        self.all = sorted(plan.known_events) + pages + list(UNKNOWN_EVENT_NAMES)
        lower = sorted(plan.core_features)[0].lower()
        if lower not in self.all:
            self.all.append(lower)
        self.code = {name: i for i, name in enumerate(self.all)}
        self.unknown_codes = np.array([self.code[n] for n in (*UNKNOWN_EVENT_NAMES, lower)])
        self.feature_codes = np.array([self.code[f] for f in features])
        self.paths = [path for _, path in PRE_SIGNUP_PAGES + APP_PAGES] + [APP_PATH]


class _Events:
    """Column buffers for one day's events."""

    cols = (
        "user_pos",
        "with_user",
        "type",
        "name_code",
        "ts_us",
        "prop_kind",
        "plan",
        "from_plan",
        "amount",
        "detail",
        "page",
        "visitor",
    )

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, n: int, **values) -> None:
        if n == 0:
            return
        part = {}
        for col in self.cols:
            v = values.get(
                col, {"with_user": True, "amount": np.nan, "visitor": -1, "page": -1}.get(col, 0)
            )
            part[col] = np.broadcast_to(np.asarray(v), (n,)).copy()
        self.parts.append(part)

    def concat(self) -> dict[str, np.ndarray]:
        if not self.parts:
            return {c: np.zeros(0) for c in self.cols}
        return {c: np.concatenate([p[c] for p in self.parts]) for c in self.cols}


def _grouped_offsets(keys: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Cumulative gaps within runs of equal sorted `keys` (first element of a run gets 0)."""
    cs = np.cumsum(gaps)
    starts = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
    run_id = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
    return cs - cs[starts][run_id]


class _Simulation:
    def __init__(
        self,
        users: int,
        days: int,
        seed: int,
        start: date,
        defect_rate: float,
        late_window_days: int,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n, self.days, self.start = users, days, start
        self.defect_rate, self.late_window_days = defect_rate, late_window_days
        self.names = _Names()
        self.n_milestones = len(self.names.milestone_events)
        self.pop = m.Population.draw(
            self.rng, users, days, len(self.names.features), start.weekday()
        )
        n = users
        self.user_ids = out.seeded_hex_ids(self.rng, n, "usr_")
        self.anonymous_ids = out.seeded_uuids(self.rng, n)
        pos = np.arange(n)
        self.companies = np.char.add(
            COMPANY_STEMS[pos % len(COMPANY_STEMS)], (pos // len(COMPANY_STEMS) % 997).astype(str)
        )
        self.emails = np.char.add(
            np.char.add(self.user_ids.astype(str), "@"),
            np.char.add(np.char.lower(self.companies), ".example.com"),
        )
        self.signed = np.zeros(n, bool)
        self.alive = np.zeros(n, bool)
        self.plan = np.zeros(n, np.int8)
        self.trial_start = np.full(n, -1)
        self.anchor = np.full(n, -1)
        self.milestones = np.zeros(n, np.int64)
        self.days_inactive = np.zeros(n, np.int64)
        self.feature_use = np.zeros(n)
        self.tickets_recent = np.zeros(n, np.int64)
        self.churn_day = np.full(n, -1)
        self.first_paid_day = np.full(n, -1)

    # ---- static per-user table used by the line renderer
    def users_table(self) -> pa.Table:
        pop, pos = self.pop, np.arange(self.n)
        locale = np.array(["en-US", "en-GB", "de-DE", "fr-FR", "nl-NL", "en-CA", "en-AU", "es-ES"])
        agents = np.array(
            [
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0",
            ]
        )
        return pa.table(
            {
                "pos": pos,
                "user_id": out.to_arrow_strings(self.user_ids),
                "anonymous_id": out.to_arrow_strings(self.anonymous_ids),
                "email": self.emails,
                "company": self.companies,
                "locale": locale[pop.country],
                "user_agent": agents[pos % 3],
                "ip": [f"203.0.{(p * 7) % 250}.{p % 250}" for p in pos],
            }
        )

    def contact_rows(self, idx: np.ndarray, updated_us: np.ndarray) -> pd.DataFrame:
        pop = self.pop
        signup_us = (
            (self.start - EPOCH.date()).days + pop.signup_day[idx]
        ) * US_PER_DAY + pop.signup_second[idx] * 1_000_000
        return pd.DataFrame(
            {
                "pos": idx,
                "signup_us": signup_us,
                "updated_us": updated_us,
                "plan": self.plan[idx].copy(),
            }
        )

    def hazards(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        churn = m.churn_hazard(
            self.pop,
            idx,
            self.days_inactive[idx],
            self.milestones[idx],
            self.plan[idx],
            self.tickets_recent[idx],
        )
        upgrade = m.upgrade_hazard(
            self.pop, idx, self.milestones[idx], self.feature_use[idx], self.plan[idx]
        )
        return churn, upgrade


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
) -> DemoSummary:
    """Write `days` daily partitions starting at `start` for `users` users into `out_dir` (landing
    layout) and the ground truth into `truth_dir`. Existing table folders under `out_dir` are
    replaced so the folder always holds exactly one generated data set.

    The product is in steady state on the first day: the simulation starts `history_days`
    earlier (signups spread over history and window alike), those days are simulated but not
    written, and the first written day carries a CRM export of every contact that already
    exists, as a company connecting segflow to a live product would have."""
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
    sim = _Simulation(
        users,
        history_days + days,
        seed,
        start - timedelta(days=history_days),
        defect_rate,
        late_window_days,
    )
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
    defects: list[dict] = []
    truth_parts: list[pd.DataFrame] = []
    carried_lines: list[tuple[str, dict]] = []
    for d in range(history_days + days):
        day = sim.start + timedelta(days=d)
        existing = np.flatnonzero(sim.signed) if d == history_days and d > 0 else None
        contacts, invoices, events = _simulate_day(sim, d, day)
        if d < history_days:
            continue
        if existing is not None and contacts is not None:  # one row per contact that day
            existing = existing[~np.isin(existing, contacts["pos"].to_numpy())]
        if existing is not None and len(existing):
            snapshot = sim.contact_rows(existing, np.full(len(existing), _day_us(day)))
            contacts = pd.concat([snapshot, contacts], ignore_index=True)
        carried_lines = _write_day(
            sim,
            conn,
            params,
            out_dir,
            d,
            day,
            contacts,
            invoices,
            events,
            carried_lines,
            defects,
            summary,
        )
        if day.weekday() == 0:
            truth_parts.append(_truth_for_day(sim, d, day))
    conn.close()
    _write_truth(sim, truth_dir, truth_parts, defects)
    summary.defects = pd.Series([x["kind"] for x in defects], dtype=object).value_counts().to_dict()
    summary.elapsed_seconds = time.perf_counter() - t0
    return summary


def _day_us(day: date) -> int:
    return (day - EPOCH.date()).days * US_PER_DAY


def _simulate_day(sim: _Simulation, d: int, day: date):
    rng, pop, names = sim.rng, sim.pop, sim.names
    day_us = _day_us(day)
    weekday = day.weekday()
    ev = _Events()
    contact_parts: list[pd.DataFrame] = []

    def random_time(n: int, mean_h: float = 13.5, sd_h: float = 3.2) -> np.ndarray:
        return day_us + (rng.normal(mean_h, sd_h, n).clip(0.0, 23.99) * 3.6e9).astype(np.int64)

    # 1. churn among existing customers (hazard from yesterday's state)
    existing = np.flatnonzero(sim.signed & sim.alive)
    h_churn, _ = sim.hazards(existing)
    churned = existing[rng.random(len(existing)) < h_churn]
    sim.alive[churned] = False
    sim.churn_day[churned] = d
    paid_churn = churned[sim.plan[churned] >= m.PRO]
    if len(paid_churn):
        cancel_ts = random_time(len(paid_churn))
        emits = rng.random(len(paid_churn)) < m.CANCEL_EVENT_P
        ids = paid_churn[emits]
        ev.add(
            len(ids),
            user_pos=ids,
            type=TRACK,
            prop_kind=P_CANCEL,
            name_code=names.code[rng.choice(names.plan.cancel_events)] if len(ids) else 0,
            ts_us=cancel_ts[emits],
            plan=m.FREE,
            from_plan=sim.plan[ids],
            detail=rng.integers(0, len(CANCEL_REASONS), len(ids)),
            page=len(names.paths) - 1,
        )
        sim.plan[paid_churn] = m.FREE
        contact_parts.append(sim.contact_rows(paid_churn, cancel_ts))
    survivors = existing[sim.alive[existing]]

    # 2. trial expiry, upgrades, support tickets
    expired = survivors[
        (sim.plan[survivors] == m.TRIAL) & (d - sim.trial_start[survivors] >= m.TRIAL_DAYS)
    ]
    sim.plan[expired] = m.FREE
    if len(expired):
        contact_parts.append(
            sim.contact_rows(expired, np.full(len(expired), day_us + 3_600_000_000))
        )
    _, h_up = sim.hazards(survivors)
    upgraded = survivors[rng.random(len(survivors)) < h_up]
    forced = np.zeros(sim.n, bool)
    if len(upgraded):
        to_plan = np.where(
            rng.random(len(upgraded)) < m.SIZE_ENTERPRISE_P[pop.size[upgraded]], m.ENTERPRISE, m.PRO
        ).astype(np.int8)
        up_ts = random_time(len(upgraded))
        ev.add(
            len(upgraded),
            user_pos=upgraded,
            type=TRACK,
            prop_kind=P_UPGRADE,
            name_code=names.code[names.plan.upgrade_events[0]],
            ts_us=up_ts,
            plan=to_plan,
            from_plan=sim.plan[upgraded],
            amount=m.monthly_price(pop, upgraded, to_plan),
            page=len(names.paths) - 1,
        )
        sim.plan[upgraded] = to_plan
        sim.anchor[upgraded] = d
        sim.first_paid_day[upgraded] = np.where(
            sim.first_paid_day[upgraded] < 0, d, sim.first_paid_day[upgraded]
        )
        contact_parts.append(sim.contact_rows(upgraded, up_ts))
        forced[upgraded] = True
    age = d - pop.signup_day[survivors]
    stuck = (sim.milestones[survivors] < 3) & (age > 7)
    tickets = survivors[rng.random(len(survivors)) < m.SUPPORT_BASE * np.where(stuck, 2.0, 1.0)]
    if len(tickets):
        ev.add(
            len(tickets),
            user_pos=tickets,
            type=TRACK,
            prop_kind=P_SUPPORT,
            name_code=names.code[names.plan.support_events[0]],
            ts_us=random_time(len(tickets)),
            plan=sim.plan[tickets],
            detail=rng.integers(0, len(TICKET_CATEGORIES), len(tickets)),
            page=len(names.paths) - 1,
        )
        sim.tickets_recent[tickets] = 15
        forced[tickets] = True

    # 3. who is active today
    p_act = m.active_probability(pop, survivors, age, sim.milestones[survivors], weekday)
    active = survivors[(rng.random(len(survivors)) < p_act) | forced[survivors]]

    # 4. new signups: anonymous pages, identify, first milestone (account created)
    lo, hi = np.searchsorted(pop.signup_day, [d, d + 1])
    new = np.arange(lo, hi)
    sim.signed[new] = sim.alive[new] = True
    sim.plan[new] = np.where(pop.starts_on_trial[new], m.TRIAL, m.FREE)
    sim.trial_start[new] = d
    sim.milestones[new] = 1
    signup_us = day_us + pop.signup_second[new] * 1_000_000
    contact_parts.insert(0, sim.contact_rows(new, signup_us))
    n_pages = 1 + rng.poisson(1.5, len(new))
    page_user = np.repeat(new, n_pages)
    page_ts = np.repeat(signup_us, n_pages) - rng.integers(10, 1800, len(page_user)) * 1_000_000
    page_code = rng.integers(0, len(PRE_SIGNUP_PAGES), len(page_user))
    ev.add(
        len(page_user),
        user_pos=page_user,
        with_user=False,
        type=PAGE,
        prop_kind=P_PAGE,
        name_code=np.array([names.code[p] for p, _ in PRE_SIGNUP_PAGES])[page_code],
        ts_us=np.maximum(page_ts, day_us),
        page=page_code,
        plan=m.FREE,
    )
    ev.add(
        len(new),
        user_pos=new,
        type=IDENTIFY,
        prop_kind=P_TRAITS,
        ts_us=signup_us,
        plan=sim.plan[new],
        name_code=0,
        page=3,
    )
    first = names.milestone_events[0]
    ev.add(
        len(new),
        user_pos=new,
        type=TRACK,
        name_code=np.array([names.code[e] for e in first])[rng.integers(0, len(first), len(new))],
        ts_us=signup_us + 2_000_000,
        plan=sim.plan[new],
        page=len(names.paths) - 1,
    )
    # anonymous visitors who never sign up
    n_visitors = rng.poisson(max(sim.n / max(sim.days, 1), 1.0) * 0.6)
    vis_code = rng.integers(0, len(PRE_SIGNUP_PAGES), n_visitors)
    ev.add(
        n_visitors,
        user_pos=-1,
        with_user=False,
        type=PAGE,
        prop_kind=P_PAGE,
        name_code=np.array([names.code[p] for p, _ in PRE_SIGNUP_PAGES])[vis_code],
        ts_us=random_time(n_visitors),
        page=vis_code,
        visitor=np.arange(n_visitors),
    )

    # 5. milestone progress of active users (new users may progress on day one too)
    movers = np.concatenate([active, new])
    nxt = sim.milestones[movers]
    can = nxt < sim.n_milestones
    p_ms = m.milestone_probability(pop, movers, nxt) * (0.5 + 0.5 * np.isin(movers, active))
    reach = movers[can & (rng.random(len(movers)) < p_ms)]
    for k in range(1, sim.n_milestones):
        ids = reach[sim.milestones[reach] == k]
        evs = names.milestone_events[k]
        ev.add(
            len(ids),
            user_pos=ids,
            type=TRACK,
            plan=sim.plan[ids],
            page=len(names.paths) - 1,
            name_code=np.array([names.code[e] for e in evs])[rng.integers(0, len(evs), len(ids))],
            ts_us=day_us,
        )  # placed inside a session below
    sim.milestones[reach] += 1

    # 6. ordinary feature use in sessions
    rate = m.EVENTS_PER_ACTIVE_DAY[pop.latent[movers]] * (0.6 + 0.1 * sim.milestones[movers])
    rate = np.where(np.isin(movers, new), rate * 0.5, rate)
    counts = 1 + rng.poisson(rate)
    ev_user = np.repeat(movers, counts)
    avail = sim.milestones[ev_user][:, None] > names.unlock_level[None, :]
    w = pop.feature_pref[ev_user] * avail
    cw = np.cumsum(w, axis=1)
    pick = (cw < rng.random(len(ev_user))[:, None] * cw[:, -1:]).sum(axis=1)
    pick = np.minimum(pick, len(names.features) - 1)
    ev.add(
        len(ev_user),
        user_pos=ev_user,
        type=TRACK,
        name_code=names.feature_codes[pick],
        ts_us=day_us,
        plan=sim.plan[ev_user],
        page=len(names.paths) - 1,
    )
    core_today = np.bincount(ev_user[names.core_mask[pick]], minlength=sim.n)
    in_app = movers[rng.random(len(movers)) < 0.35]
    app_code = rng.integers(0, len(APP_PAGES), len(in_app))
    ev.add(
        len(in_app),
        user_pos=in_app,
        type=PAGE,
        prop_kind=P_PAGE,
        ts_us=day_us,
        name_code=np.array([names.code[p] for p, _ in APP_PAGES])[app_code],
        page=len(PRE_SIGNUP_PAGES) + app_code,
        plan=sim.plan[in_app],
    )

    events = ev.concat()
    _place_in_sessions(sim, events, day_us, new, signup_us)

    # 7. state updates
    active_today = np.zeros(sim.n, bool)
    active_today[movers] = True
    alive_signed = sim.signed & sim.alive
    sim.days_inactive = np.where(active_today, 0, sim.days_inactive + alive_signed)
    sim.feature_use = 0.85 * sim.feature_use + core_today
    sim.tickets_recent = np.maximum(sim.tickets_recent - 1, 0)

    # 8. invoices: monthly from the upgrade day, for paid customers still alive
    paid = np.flatnonzero(sim.alive & (sim.plan >= m.PRO) & (sim.anchor >= 0))
    due = paid[(d - sim.anchor[paid]) % 30 == 0]
    invoices = _invoice_rows(sim, due, day_us)
    contacts = pd.concat(contact_parts, ignore_index=True) if contact_parts else None
    return contacts, invoices, events


def _place_in_sessions(
    sim: _Simulation, ev: dict[str, np.ndarray], day_us: int, new: np.ndarray, signup_us: np.ndarray
) -> None:
    """Give every event placed at midnight (`ts_us == day_us`) a time inside one of its user's
    sessions: session starts follow a daytime profile, events are minutes apart."""
    rng = sim.rng
    todo = np.flatnonzero(ev["ts_us"] == day_us)
    if not len(todo):
        return
    users = ev["user_pos"][todo]
    uniq, inv, per_user = np.unique(users, return_inverse=True, return_counts=True)
    n_sessions = np.minimum(1 + rng.poisson(per_user / 6.0), 4)
    session = (rng.random(len(todo)) * n_sessions[inv]).astype(np.int64)
    starts = (rng.normal(13.5, 3.5, (len(uniq), 4)).clip(0.0, 23.5) * 3.6e9).astype(np.int64)
    new_pos = np.searchsorted(new, uniq)
    is_new = np.zeros(len(uniq), dtype=bool)
    if len(new):  # days without signups (small demos) have no new users to place
        is_new = (new_pos < len(new)) & (new[np.minimum(new_pos, len(new) - 1)] == uniq)
    if is_new.any():
        signup_off = signup_us[new_pos[is_new]] - day_us + 30_000_000
        starts[is_new] = signup_off[:, None] + (
            rng.exponential(1800.0, (is_new.sum(), 4)) * 1e6
        ).astype(np.int64)
    key = inv * 4 + session
    order = np.argsort(key, kind="stable")
    gaps = (rng.exponential(150.0, len(todo)) * 1e6).astype(np.int64)
    offsets = np.empty(len(todo), np.int64)
    offsets[order] = _grouped_offsets(key[order], gaps[order])
    ts = day_us + starts[inv, session] + offsets
    ev["ts_us"][todo] = np.minimum(ts, day_us + US_PER_DAY - 1000)


def _invoice_rows(sim: _Simulation, due: np.ndarray, day_us: int) -> pd.DataFrame | None:
    if not len(due):
        return None
    rng, pop = sim.rng, sim.pop
    status = rng.choice(len(m.INVOICE_STATUS), len(due), p=m.INVOICE_STATUS_P)
    start_us = day_us + pop.signup_second[due] * 1_000_000
    return pd.DataFrame(
        {
            "invoice_id": out.seeded_hex_ids(rng, len(due), "inv_", 16).astype(str),
            "user_id": sim.user_ids[due].astype(str),
            "amount": m.monthly_price(pop, due, sim.plan[due]),
            "currency": [m.COUNTRY_CURRENCY[m.COUNTRIES[c]] for c in pop.country[due]],
            "status": np.array(m.INVOICE_STATUS)[status],
            "period_start": pd.to_datetime(start_us, unit="us"),
            "period_end": pd.to_datetime(start_us + 30 * US_PER_DAY, unit="us"),
            "paid_at": pd.Series(
                pd.to_datetime(start_us + rng.integers(60, 7200, len(due)) * 1_000_000, unit="us")
            ).where(status != 1),
        }
    )


def _inject_event_defects(
    sim: _Simulation, ev: dict[str, np.ndarray], is_last_day: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick rows for each defect kind (rate split evenly across kinds). Returns the per-row
    defect label, the rows to duplicate within the day and the rows to re-send tomorrow."""
    rng = sim.rng
    n = len(ev["ts_us"])
    label = np.full(n, "", dtype=object)
    empty = np.zeros(0, np.int64)
    if sim.defect_rate <= 0 or n == 0:
        return label, empty, empty
    free = np.ones(n, bool)
    chosen: dict[str, np.ndarray] = {}
    eligible = {
        "null_user_id": ev["with_user"] & (ev["type"] == TRACK),
        "unknown_event": ev["type"] == TRACK,
    }
    for kind in DEFECT_KINDS:
        count = rng.binomial(n, sim.defect_rate / len(DEFECT_KINDS))
        pool = np.flatnonzero(free & eligible.get(kind, True))
        rows = rng.choice(pool, min(count, len(pool)), replace=False) if count else empty
        free[rows] = False
        chosen[kind] = np.sort(rows)
    window = sim.late_window_days
    lat = chosen["late_within_window"]
    ev["ts_us"][lat] -= rng.integers(1, window + 1, len(lat)) * US_PER_DAY
    lat = chosen["late_beyond_window"]
    ev["ts_us"][lat] -= rng.integers(window + 1, window + 8, len(lat)) * US_PER_DAY
    unk = chosen["unknown_event"]
    ev["name_code"][unk] = rng.choice(sim.names.unknown_codes, len(unk))
    for kind in (
        "late_within_window",
        "late_beyond_window",
        "malformed_json",
        "null_user_id",
        "null_user_and_anonymous_id",
        "unknown_event",
    ):
        label[chosen[kind]] = kind
    dup_next = chosen["duplicate_next_day"]
    dup_same = chosen["duplicate_same_day"]
    if is_last_day:
        dup_same, dup_next = np.sort(np.concatenate([dup_same, dup_next])), empty
    return label, dup_same, dup_next


def _write_day(
    sim,
    conn,
    params,
    out_dir: Path,
    d: int,
    day: date,
    contacts,
    invoices,
    ev,
    carried: list[tuple[str, dict]],
    defects: list[dict],
    summary: DemoSummary,
):
    rng, tag = sim.rng, day.isoformat()
    rel_events = f"events/dt={tag}/events-{tag}.jsonl"
    # received_at: a moment after the event (seconds, sometimes minutes for queued clients)
    n = len(ev["ts_us"])
    delay = rng.lognormal(np.log(0.8e6), 1.0, n).astype(np.int64)
    delay += np.where(rng.random(n) < 0.03, rng.integers(60, 1800, n) * 1_000_000, 0)
    ev["recv_us"] = ev["ts_us"] + delay
    order = np.lexsort((np.arange(n), ev["ts_us"]))
    ev = {k: v[order] for k, v in ev.items()}
    label, dup_same, dup_next = _inject_event_defects(sim, ev, d == sim.days - 1)
    mids = out.seeded_uuids(rng, n)
    visitor_ids = out.seeded_uuids(rng, int(ev["visitor"].max()) + 1 if n else 0)
    rows = np.concatenate([np.arange(n), dup_same])
    table = pa.table(
        {
            "row_no": np.arange(len(rows)),
            "user_pos": ev["user_pos"][rows].astype(np.int64),
            "with_user": ev["with_user"][rows].astype(bool),
            "type": ev["type"][rows].astype(np.int64),
            "name_code": ev["name_code"][rows].astype(np.int64),
            "ts_us": ev["ts_us"][rows].astype(np.int64),
            "recv_us": ev["recv_us"][rows].astype(np.int64),
            "prop_kind": ev["prop_kind"][rows].astype(np.int64),
            "plan": ev["plan"][rows].astype(np.int64),
            "from_plan": ev["from_plan"][rows].astype(np.int64),
            "amount": ev["amount"][rows].astype(np.float64),
            "detail": ev["detail"][rows].astype(np.int64),
            "page": np.where(
                ev["page"][rows] < 0, len(sim.names.paths) - 1, ev["page"][rows]
            ).astype(np.int64),
            "visitor_anonymous_id": pa.array(
                [None] * len(rows)
                if not len(visitor_ids)
                else np.where(
                    ev["visitor"][rows] >= 0,
                    visitor_ids[np.maximum(ev["visitor"][rows], 0)].astype(str),
                    None,
                ),
                type=pa.string(),
            ),
            "mid": out.to_arrow_strings(mids[rows]) if len(rows) else pa.array([], pa.string()),
            "defect": pa.array(
                np.concatenate([label, np.full(len(dup_same), "", object)]).astype(str)
            ),
        }
    )
    lines = out.event_lines(conn, table, params)
    body = out.lines_bytes(lines)
    tail = "".join(text for text, _ in carried).encode()
    out.write_bytes(out_dir / rel_events, body + tail)
    summary.files_written += 1
    summary.rows["events"] += len(rows) + len(carried)
    for r in np.flatnonzero(label != ""):
        defects.append(
            {
                "kind": label[r],
                "table": "events",
                "dt": tag,
                "file": rel_events,
                "line": int(r) + 1,
                "message_id": mids[r].decode(),
                "invoice_id": None,
            }
        )
    for i, r in enumerate(dup_same):
        defects.append(
            {
                "kind": "duplicate_same_day",
                "table": "events",
                "dt": tag,
                "file": rel_events,
                "line": n + i + 1,
                "message_id": mids[r].decode(),
                "invoice_id": None,
            }
        )
    for i, (_, rec) in enumerate(carried):
        defects.append({**rec, "dt": tag, "file": rel_events, "line": len(rows) + i + 1})
    next_carried = []
    if len(dup_next):
        py_lines = lines.to_pylist()
        for r in dup_next:
            next_carried.append(
                (
                    py_lines[r],
                    {
                        "kind": "duplicate_next_day",
                        "table": "events",
                        "message_id": mids[r].decode(),
                        "invoice_id": None,
                    },
                )
            )
    if contacts is not None and len(contacts):
        _write_contacts(sim, conn, out_dir, tag, contacts, summary)
    if invoices is not None and len(invoices):
        _write_invoices(sim, out_dir, tag, invoices, defects, summary)
    return next_carried


def _write_contacts(sim, conn, out_dir: Path, tag: str, rows: pd.DataFrame, summary) -> None:
    pop, pos = sim.pop, rows["pos"].to_numpy()
    table = pa.table(
        {
            "row_no": np.arange(len(rows)),
            "user_id": sim.user_ids[pos].astype(str),
            "email": sim.emails[pos],
            "company": sim.companies[pos],
            "signup_at": pd.to_datetime(rows["signup_us"].to_numpy(), unit="us"),
            "industry": np.array(m.INDUSTRIES)[pop.industry[pos]],
            "company_size": np.array(m.COMPANY_SIZES)[pop.size[pos]],
            "country": np.array(m.COUNTRIES)[pop.country[pos]],
            "role": np.array(m.ROLES)[pop.role[pos]],
            "plan": np.array(m.PLANS)[rows["plan"].to_numpy()],
            "acquisition_channel": np.array(m.CHANNELS)[pop.channel[pos]],
            "updated_at": pd.to_datetime(rows["updated_us"].to_numpy(), unit="us"),
        }
    )
    out.write_contacts_csv(conn, table, out_dir / f"crm_contacts/dt={tag}/contacts-{tag}.csv")
    summary.files_written += 1
    summary.rows["crm_contacts"] += len(rows)


def _write_invoices(
    sim, out_dir: Path, tag: str, rows: pd.DataFrame, defects: list[dict], summary
) -> None:
    rel = f"billing_invoices/dt={tag}/invoices-{tag}.parquet"
    if sim.defect_rate > 0:
        bad = np.flatnonzero(sim.rng.random(len(rows)) < sim.defect_rate)
        rows.loc[bad, "amount"] = -rows.loc[bad, "amount"]
        for r in bad:
            defects.append(
                {
                    "kind": "negative_amount",
                    "table": "billing_invoices",
                    "dt": tag,
                    "file": rel,
                    "line": int(r) + 1,
                    "message_id": None,
                    "invoice_id": rows.at[r, "invoice_id"],
                }
            )
    table = pa.Table.from_pandas(rows, preserve_index=False)
    out.write_parquet(table, out_dir / rel)
    summary.files_written += 1
    summary.rows["billing_invoices"] += len(rows)


def _truth_for_day(sim: _Simulation, d: int, day: date) -> pd.DataFrame:
    idx = np.flatnonzero(sim.signed & sim.alive)
    h_churn, h_up = sim.hazards(idx)
    since_anchor = np.where(sim.anchor[idx] >= 0, d - sim.anchor[idx], 0)
    truth = m.truth_snapshot(sim.pop, idx, h_churn, h_up, sim.plan[idx], since_anchor)
    return pd.DataFrame(
        {
            "user_id": sim.user_ids[idx].astype(str),
            "snapshot_date": pd.Timestamp(day),
            "plan": np.array(m.PLANS)[sim.plan[idx]],
            "latent_type": np.array(m.LATENT_TYPES)[sim.pop.latent[idx]],
            "churn_hazard_daily": h_churn,
            **truth,
        }
    )


def _write_truth(
    sim: _Simulation, truth_dir: Path, parts: list[pd.DataFrame], defects: list[dict]
) -> None:
    cols = [
        "user_id",
        "snapshot_date",
        "plan",
        "latent_type",
        "churn_hazard_daily",
        "p_churn_28d",
        "p_convert_28d",
        "expected_revenue_90d",
    ]
    weekly = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    weekly["snapshot_date"] = pd.to_datetime(weekly["snapshot_date"]).dt.date
    weekly.to_parquet(truth_dir / "truth_weekly.parquet", index=False)
    start = pd.Timestamp(sim.start)

    def day_or_null(days: np.ndarray) -> pd.Series:
        dates = pd.Series(start + pd.to_timedelta(np.maximum(days, 0), unit="D"))
        return dates.where(days >= 0)

    signed = np.flatnonzero(sim.signed)
    pd.DataFrame(
        {
            "user_id": sim.user_ids[signed].astype(str),
            "latent_type": np.array(m.LATENT_TYPES)[sim.pop.latent[signed]],
            "signup_date": (start + pd.to_timedelta(sim.pop.signup_day[signed], unit="D")).date,
            "churn_date": day_or_null(sim.churn_day[signed]).dt.date,
            "first_paid_date": day_or_null(sim.first_paid_day[signed]).dt.date,
        }
    ).to_parquet(truth_dir / "truth_users.parquet", index=False)
    manifest = pd.DataFrame(
        defects, columns=["kind", "table", "dt", "file", "line", "message_id", "invoice_id"]
    )
    manifest["expected"] = manifest["kind"].map(EXPECTED)
    manifest.to_parquet(truth_dir / "defects.parquet", index=False)
