"""The SaaS demo's oracle: the true probability of each churn outcome over the next `horizon`
days, given everything the generator knows at the end of a snapshot day (latent type, card
risk, engagement state, retries in progress).

The outcomes depend on how engagement evolves, so they are estimated by Monte Carlo: every
user's state is replicated and stepped forward day by day with the same hazards and the same
order of steps as `saas_day.simulate_day` (its random draws are replaced by draws from the same
distributions). Two passes:
- cancellation: voluntary cancellations are integrated out instead of drawn (the paths before
  a cancellation do not depend on it), P(no cancellation) = E[prod (1 - h_t) * no failed-charge
  ending], which leaves far less noise than counting cancellations;
- inactivity (no event at all in the horizon): everything drawn, including cancellations
  (many cancelled subscribers leave), the share of paths without an event.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from demo import saas_model as m

MAX_ROWS = 400_000  # users x replicas per pass: bounds memory and time on large demos


@dataclass
class _Paths:
    """State of `len(pos)` simulated futures (user `pos[i]`, one replica per row)."""

    pos: np.ndarray
    plan: np.ndarray
    trial_start: np.ndarray
    anchor: np.ndarray
    milestones: np.ndarray
    days_inactive: np.ndarray
    feature_use: np.ndarray
    tickets_recent: np.ndarray
    dunning: np.ndarray
    alive: np.ndarray

    @classmethod
    def of(cls, sim, idx: np.ndarray, replicas: int) -> _Paths:
        state = {
            f.name: np.repeat(getattr(sim, f.name)[idx], replicas)
            for f in fields(cls)
            if f.name not in ("pos", "alive")
        }
        rows = len(idx) * replicas
        return cls(pos=np.repeat(idx, replicas), alive=np.ones(rows, bool), **state)


def forward_outcomes(
    sim, d: int, idx: np.ndarray, horizon: int, replicas: int, seed: int
) -> dict[str, np.ndarray]:
    """P(cancel within `horizon` days) and P(no event within `horizon` days) for users `idx`
    (signed up and not gone) from the state at the end of day `d`."""
    rng = np.random.default_rng([seed, d])
    replicas = max(1, min(replicas, MAX_ROWS // max(len(idx), 1)))
    levels = np.arange(sim.n_milestones + 1)
    share_by_level = np.stack(  # (users in idx, milestone level): chance an event is core
        [
            m.core_share(
                sim.pop, idx, np.full(len(idx), k), sim.names.unlock_level, sim.names.core_mask
            )
            for k in levels
        ],
        axis=1,
    )
    core_share = np.repeat(share_by_level, replicas, axis=0)
    paths = _Paths.of(sim, idx, replicas)
    no_cancel = np.ones(len(paths.pos))
    for t in range(d + 1, d + horizon + 1):
        _step(sim, paths, t, rng, core_share, no_cancel=no_cancel)
    paths = _Paths.of(sim, idx, replicas)
    quiet = np.ones(len(paths.pos), bool)
    for t in range(d + 1, d + horizon + 1):
        quiet &= ~_step(sim, paths, t, rng, core_share, no_cancel=None)
    return {
        "p_cancel": 1.0 - no_cancel.reshape(-1, replicas).mean(axis=1),
        "p_inactive": quiet.reshape(-1, replicas).mean(axis=1),
        "oracle_replicas": np.full(len(idx), replicas),
    }


def _step(
    sim, s: _Paths, t: int, rng, core_share: np.ndarray, no_cancel: np.ndarray | None
) -> np.ndarray:
    """Advance every path by day `t`; returns which paths had an event that day. With
    `no_cancel`, voluntary cancellations are not drawn: their survival is multiplied into
    it, and a subscription ended by a failed charge sets it to 0."""
    pop, n = sim.pop, len(s.pos)
    weekday = (sim.start.weekday() + t) % 7
    # 1. exits (hazards from yesterday's state)
    h = m.exit_hazard(
        pop,
        s.pos,
        s.plan,
        s.days_inactive,
        s.milestones,
        s.feature_use,
        s.tickets_recent,
        s.dunning,
    )
    paid = s.alive & (s.plan >= m.PRO)
    leaving = s.alive & (rng.random(n) < h)
    if no_cancel is not None:
        no_cancel *= np.where(paid, 1.0 - h, 1.0)
        voluntary = np.zeros(n, bool)
    else:
        voluntary = leaving & paid
    retrying = paid & ~voluntary & (s.dunning > 0)
    recovered = retrying & (rng.random(n) < m.RECOVER_P)
    s.dunning[recovered] = 0
    failing = retrying & ~recovered
    involuntary = failing & (s.dunning >= m.DUNNING_DAYS)
    s.dunning[failing] += 1
    cancels = voluntary | involuntary
    if no_cancel is not None:
        no_cancel[involuntary] = 0.0
    s.plan[cancels] = m.FREE
    s.dunning[cancels] = 0
    s.alive &= ~((leaving & ~paid) | (cancels & (rng.random(n) < m.LEAVE_AFTER_CANCEL_P)))
    # 2. trial expiry, upgrades, support tickets
    s.plan[s.alive & (s.plan == m.TRIAL) & (t - s.trial_start >= m.TRIAL_DAYS)] = m.FREE
    h_up = m.upgrade_hazard(pop, s.pos, s.milestones, s.feature_use, s.plan)
    upgraded = s.alive & (rng.random(n) < h_up)
    s.plan[upgraded] = m.PRO
    s.anchor[upgraded] = t
    age = t - pop.signup_day[s.pos]
    stuck = (s.milestones < 3) & (age > 7)
    ticket = s.alive & (rng.random(n) < m.SUPPORT_BASE * np.where(stuck, 2.0, 1.0))
    s.tickets_recent[ticket] = 15
    # 3. who is active; 5. milestones; 6. core-feature use
    p_act = m.active_probability(pop, s.pos, age, s.milestones, weekday)
    active = s.alive & ((rng.random(n) < p_act) | upgraded | ticket)
    can = active & (s.milestones < sim.n_milestones)
    p_ms = m.milestone_probability(pop, s.pos, s.milestones)
    s.milestones[can & (rng.random(n) < p_ms)] += 1
    rate = m.EVENTS_PER_ACTIVE_DAY[pop.latent[s.pos]] * (0.6 + 0.1 * s.milestones)
    counts = np.where(active, 1 + rng.poisson(rate), 0)
    core = rng.binomial(counts, core_share[np.arange(n), s.milestones])
    # 7. state; 8. monthly charges (a failure starts the retries)
    s.days_inactive = np.where(active, 0, s.days_inactive + s.alive)
    s.feature_use = 0.85 * s.feature_use + core
    s.tickets_recent = np.maximum(s.tickets_recent - 1, 0)
    due = (
        s.alive
        & (s.plan >= m.PRO)
        & (s.anchor >= 0)
        & ((t - s.anchor) % 30 == 0)
        & (s.dunning == 0)
    )
    s.dunning[due & (rng.random(n) < pop.card_fail_p[s.pos])] = 1
    return active | cancels
