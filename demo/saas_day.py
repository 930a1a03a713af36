"""One simulated day of the SaaS demo: churn, trial expiry, upgrades, support tickets, who is
active, signups, onboarding milestones, feature use placed in sessions, and monthly invoices."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from demo import output as out
from demo import saas_model as m
from demo.saas_sim import (
    APP_PAGES,
    CANCEL_REASONS,
    IDENTIFY,
    P_CANCEL,
    P_PAGE,
    P_SUPPORT,
    P_TRAITS,
    P_UPGRADE,
    PAGE,
    PRE_SIGNUP_PAGES,
    TICKET_CATEGORIES,
    TRACK,
    US_PER_DAY,
    Events,
    Simulation,
    day_start_us,
)


def _grouped_offsets(keys: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Cumulative gaps within runs of equal sorted `keys` (first element of a run gets 0)."""
    cs = np.cumsum(gaps)
    starts = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
    run_id = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
    return cs - cs[starts][run_id]


def _exits(sim: Simulation, d: int, existing: np.ndarray, ev: Events, contact_parts, random_time):
    """Subscribers cancel (voluntarily, or when a failed charge is not recovered within the
    retries), free users leave silently. Returns the subscribers whose retried charge
    succeeded today."""
    rng, names = sim.rng, sim.names
    h_exit, _ = sim.hazards(existing)
    leaving = rng.random(len(existing)) < h_exit
    paid = sim.plan[existing] >= m.PRO
    voluntary = existing[leaving & paid]
    free_churn = existing[leaving & ~paid]
    retrying = existing[~leaving & paid & (sim.dunning[existing] > 0)]
    recovered = retrying[rng.random(len(retrying)) < m.RECOVER_P]
    sim.dunning[recovered] = 0
    failing = retrying[sim.dunning[retrying] > 0]
    involuntary = failing[sim.dunning[failing] >= m.DUNNING_DAYS]
    sim.dunning[failing] += 1
    cancels = np.concatenate([voluntary, involuntary])
    if len(cancels):
        cancel_ts = random_time(len(cancels))
        reasons = np.r_[
            rng.integers(0, len(CANCEL_REASONS) - 1, len(voluntary)),
            np.full(len(involuntary), len(CANCEL_REASONS) - 1),  # payment_failed
        ]
        ev.add(
            len(cancels),
            user_pos=cancels,
            type=TRACK,
            prop_kind=P_CANCEL,
            name_code=names.code[names.plan.cancel_events[0]],
            ts_us=cancel_ts,
            plan=m.FREE,
            from_plan=sim.plan[cancels],
            detail=reasons,
            page=len(names.paths) - 1,
        )
        sim.plan[cancels] = m.FREE
        sim.dunning[cancels] = 0
        sim.cancel_day[cancels] = d
        contact_parts.append(sim.contact_rows(cancels, cancel_ts))
        free_churn = np.r_[free_churn, cancels[rng.random(len(cancels)) < m.LEAVE_AFTER_CANCEL_P]]
    sim.alive[free_churn] = False
    sim.churn_day[free_churn] = d
    return recovered


def simulate_day(sim: Simulation, d: int, day: date):
    rng, pop, names = sim.rng, sim.pop, sim.names
    day_us = day_start_us(day)
    weekday = day.weekday()
    ev = Events()
    contact_parts: list[pd.DataFrame] = []

    def random_time(n: int, mean_h: float = 13.5, sd_h: float = 3.2) -> np.ndarray:
        return day_us + (rng.normal(mean_h, sd_h, n).clip(0.0, 23.99) * 3.6e9).astype(np.int64)

    # 1. subscriptions end, free users leave (hazards from yesterday's state)
    existing = np.flatnonzero(sim.signed & sim.alive)
    recovered = _exits(sim, d, existing, ev, contact_parts, random_time)
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
    n_visitors = rng.poisson(max(sim.base_users / max(sim.days, 1), 1.0) * 0.6)
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

    # 8. invoices: monthly from the upgrade day for subscribers (a failed charge is an open
    # invoice and starts the retries), plus today's successful retries
    paid = np.flatnonzero(sim.alive & (sim.plan >= m.PRO) & (sim.anchor >= 0))
    due = paid[((d - sim.anchor[paid]) % 30 == 0) & (sim.dunning[paid] == 0)]
    failed = rng.random(len(due)) < pop.card_fail_p[due]
    sim.dunning[due[failed]] = 1
    invoices = _invoice_rows(sim, d, due, np.where(failed, m.OPEN, m.PAID), day_us)
    retried = _invoice_rows(sim, d, recovered, np.full(len(recovered), m.PAID), day_us)
    if retried is not None:
        invoices = (
            retried if invoices is None else pd.concat([invoices, retried], ignore_index=True)
        )
    contacts = pd.concat(contact_parts, ignore_index=True) if contact_parts else None
    return contacts, invoices, events


def _place_in_sessions(
    sim: Simulation, ev: dict[str, np.ndarray], day_us: int, new: np.ndarray, signup_us: np.ndarray
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


def _invoice_rows(
    sim: Simulation, d: int, users: np.ndarray, status: np.ndarray, day_us: int
) -> pd.DataFrame | None:
    """One invoice per user for the current monthly period (from its upgrade anchor). Issued
    at the user's signup second of the day; a paid one is paid within two hours, always on
    the same day (the file's partition); a few paid ones are refunded later."""
    if not len(users):
        return None
    rng, pop = sim.rng, sim.pop
    status = np.where(
        (status == m.PAID) & (rng.random(len(users)) < m.REFUND_P), m.REFUNDED, status
    )
    period_start = (
        day_us + ((d - sim.anchor[users]) // 30 * 30 - (d - sim.anchor[users])) * US_PER_DAY
    )
    issued_s = np.minimum(pop.signup_second[users], 86_400 - 7_300)
    paid_us = day_us + (issued_s + rng.integers(60, 7200, len(users))) * 1_000_000
    return pd.DataFrame(
        {
            "invoice_id": out.seeded_hex_ids(rng, len(users), "inv_", 16).astype(str),
            "user_id": sim.user_ids[users].astype(str),
            "amount": m.monthly_price(pop, users, sim.plan[users]),
            "currency": [m.COUNTRY_CURRENCY[m.COUNTRIES[c]] for c in pop.country[users]],
            "status": np.array(m.INVOICE_STATUS)[status],
            "period_start": pd.to_datetime(period_start + issued_s * 1_000_000, unit="us"),
            "period_end": pd.to_datetime(
                period_start + issued_s * 1_000_000 + 30 * US_PER_DAY, unit="us"
            ),
            "paid_at": pd.Series(pd.to_datetime(paid_us, unit="us")).where(status != m.OPEN),
        }
    )
