"""Behaviour model of the demo generator: static user attributes, latent types and the daily
hazards. Kept apart from the writing loop so the ground truth is computed from exactly the
same formulas that drive the simulation.

All functions are vectorised over users (numpy arrays indexed by user position).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from demo.truth_columns import churn_column, conversion_column, revenue_column

COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
COMPANY_SIZE_P = (0.36, 0.30, 0.18, 0.11, 0.05)
ROLES = ("engineer", "analyst", "product_manager", "marketer", "executive", "other")
ROLE_P = (0.25, 0.2, 0.17, 0.18, 0.1, 0.1)
CHANNELS = ("organic_search", "paid_search", "referral", "social", "partner", "direct")
CHANNEL_P = (0.3, 0.22, 0.12, 0.14, 0.07, 0.15)
INDUSTRIES = ("software", "finance", "healthcare", "retail", "education", "manufacturing", "media")
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA", "AU", "ES")
COUNTRY_P = (0.42, 0.12, 0.11, 0.08, 0.05, 0.09, 0.06, 0.07)
COUNTRY_CURRENCY = {
    "US": "USD",
    "CA": "USD",
    "AU": "USD",
    "GB": "GBP",
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "ES": "EUR",
}
FX = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79}
PLANS = ("free", "trial", "pro", "enterprise")
FREE, TRIAL, PRO, ENTERPRISE = range(4)
TRIAL_DAYS = 14

# Latent user types: the hidden driver of behaviour (written to the truth, never to landing).
LATENT_TYPES = ("power", "steady", "casual", "tourist")
LATENT_P = (0.12, 0.30, 0.33, 0.25)
ACTIVE_P = np.array([0.80, 0.55, 0.32, 0.18])  # chance to be active on a weekday
ACTIVITY_DECAY_DAYS = np.array([1e9, 240.0, 70.0, 25.0])  # engagement fades with account age
EVENTS_PER_ACTIVE_DAY = np.array([9.0, 5.0, 3.0, 1.5])
CHURN_BASE = np.array([0.0008, 0.0018, 0.0045, 0.013])
MILESTONE_PROPENSITY = np.array([1.4, 1.0, 0.65, 0.3])
UPGRADE_PROPENSITY = np.array([2.2, 1.0, 0.45, 0.15])

# Effects on onboarding progress (multipliers) by company size, role and channel.
SIZE_MILESTONE = np.array([0.75, 1.0, 1.1, 1.15, 1.2])
ROLE_MILESTONE = np.array([1.2, 1.1, 1.05, 0.8, 0.7, 0.85])
CHANNEL_MILESTONE = np.array([1.0, 0.8, 1.3, 0.7, 1.25, 1.05])
CHANNEL_TRIAL_P = np.array([0.3, 0.55, 0.35, 0.2, 0.6, 0.3])
SIZE_UPGRADE = np.array([0.7, 1.0, 1.3, 1.5, 1.6])
SIZE_ENTERPRISE_P = np.array([0.02, 0.05, 0.15, 0.35, 0.6])
# Daily chance of reaching milestone k (index into the plan's ordered milestones, k >= 1).
MILESTONE_BASE = np.array([1.0, 0.45, 0.22, 0.18, 0.28])
DOW_ACTIVITY = np.array([1.0, 1.02, 1.03, 1.0, 0.9, 0.38, 0.32])  # Monday .. Sunday
PRO_PRICE = np.array([29.0, 79.0, 199.0, 499.0, 990.0])  # USD per month by size
ENTERPRISE_PRICE = np.array([499.0, 899.0, 1490.0, 2990.0, 5990.0])
INVOICE_STATUS = ("paid", "open", "refunded")
PAID, OPEN, REFUNDED = range(3)
REFUND_P = 0.02  # share of successful charges refunded later (still revenue, as billed)
SUPPORT_BASE = 0.012

# Subscriptions (contractual churn). A paid subscriber cancels with a daily hazard driven by
# engagement (decayed count of core-feature use, days inactive), recent support tickets and a
# failed payment being retried; a failed charge not recovered within DUNNING_DAYS retries ends
# the subscription (involuntary cancellation). Every subscription end is a "Subscription
# Cancelled" event (the billing system's record) and a CRM plan change to free.
CANCEL_BASE = np.array([0.003, 0.0035, 0.004, 0.005])  # by latent type
CARD_FAIL_BETA = (1.0, 24.0)  # per-user chance that a monthly charge fails ~ Beta (mean 4%)
DUNNING_DAYS = 6  # daily retries after a failed charge before the subscription ends
RECOVER_P = 0.3  # daily chance that a retry succeeds
LEAVE_AFTER_CANCEL_P = 0.6  # share of cancelled subscribers who also stop using the product


@dataclass
class Population:
    """Static attributes of every user, drawn once from the seed."""

    latent: np.ndarray
    size: np.ndarray
    role: np.ndarray
    channel: np.ndarray
    industry: np.ndarray
    country: np.ndarray
    signup_day: np.ndarray  # day index (0 = first simulated day), sorted
    signup_second: np.ndarray  # second of the signup day
    starts_on_trial: np.ndarray
    feature_pref: np.ndarray  # (users, features) preference weights
    card_fail_p: np.ndarray  # chance that one monthly charge fails

    @staticmethod
    def signup_weights(days: int, start_weekday: int, upto: int) -> np.ndarray:
        """Relative signups on day indices 0 .. upto-1 of a product whose growth curve is set
        by its first `days` days (linear growth, weekends at about half the weekday rate)."""
        day_idx = np.arange(upto)
        growth = 1.0 + 0.8 * day_idx / max(days - 1, 1)
        return growth * np.where(((day_idx + start_weekday) % 7) >= 5, 0.45, 1.0)

    @classmethod
    def draw(
        cls, rng: np.random.Generator, users: int, days: int, n_features: int, start_weekday: int
    ) -> Population:
        weights = cls.signup_weights(days, start_weekday, days)
        # Systematic sampling: each day gets the floor or ceiling of its expected signups, so
        # small demos still have signups every day.
        expected = np.cumsum(weights / weights.sum() * users)
        signup_day = np.minimum(
            np.searchsorted(expected, np.arange(users) + rng.random(), side="right"), days - 1
        )
        return cls._with_attributes(rng, np.sort(signup_day), n_features)

    @classmethod
    def draw_after(
        cls, seed: int, users: int, days: int, n_features: int, start_weekday: int, day: int
    ) -> Population:
        """The users signing up on `day` >= `days` (the product goes on growing after the
        horizon it was generated for): the same growth curve continued, a Poisson count; drawn
        from a stream of its own per day, so adding days never changes earlier ones."""
        weights = cls.signup_weights(days, start_weekday, day + 1)
        rng = np.random.default_rng([seed, 1, day])
        count = rng.poisson(users * weights[day] / weights[:days].sum())
        return cls._with_attributes(rng, np.full(count, day), n_features)

    @classmethod
    def _with_attributes(
        cls, rng: np.random.Generator, signup_day: np.ndarray, n_features: int
    ) -> Population:
        users = len(signup_day)
        hours = rng.normal(14.0, 3.5, users).clip(0.0, 23.99)
        channel = rng.choice(len(CHANNELS), users, p=CHANNEL_P)
        return cls(
            latent=rng.choice(len(LATENT_TYPES), users, p=LATENT_P),
            size=rng.choice(len(COMPANY_SIZES), users, p=COMPANY_SIZE_P),
            role=rng.choice(len(ROLES), users, p=ROLE_P),
            channel=channel,
            industry=rng.integers(0, len(INDUSTRIES), users),
            country=rng.choice(len(COUNTRIES), users, p=COUNTRY_P),
            signup_day=signup_day,
            signup_second=(hours * 3600).astype(np.int64),
            starts_on_trial=rng.random(users) < CHANNEL_TRIAL_P[channel],
            feature_pref=rng.gamma(0.8, 1.0, (users, n_features)),
            card_fail_p=rng.beta(*CARD_FAIL_BETA, users),
        )

    def extended(self, more: Population) -> Population:
        """This population followed by `more` (whose signups are later)."""
        return Population(
            **{
                f.name: np.concatenate([getattr(self, f.name), getattr(more, f.name)])
                for f in fields(self)
            }
        )


def active_probability(
    pop: Population, idx: np.ndarray, age_days: np.ndarray, milestones: np.ndarray, weekday: int
) -> np.ndarray:
    lt = pop.latent[idx]
    decay = 0.45 + 0.55 * np.exp(-age_days / ACTIVITY_DECAY_DAYS[lt])
    p = ACTIVE_P[lt] * decay * (1.0 + 0.08 * (milestones - 1)) * DOW_ACTIVITY[weekday]
    return np.clip(p, 0.0, 0.97)


def churn_hazard(
    pop: Population,
    idx: np.ndarray,
    days_inactive: np.ndarray,
    milestones: np.ndarray,
    recent_tickets: np.ndarray,
) -> np.ndarray:
    """Daily probability that a free or trial user leaves silently: rises with
    disengagement (days inactive), falls with onboarding milestones reached, rises after
    support tickets."""
    h = (
        CHURN_BASE[pop.latent[idx]]
        * np.exp(0.07 * np.minimum(days_inactive, 30))
        * np.exp(-0.3 * (milestones - 1))
        * np.where(recent_tickets > 0, 1.6, 1.0)
    )
    return np.clip(h, 0.0, 0.5)


def cancel_hazard(
    pop: Population,
    idx: np.ndarray,
    days_inactive: np.ndarray,
    feature_use: np.ndarray,
    recent_tickets: np.ndarray,
    dunning: np.ndarray,
) -> np.ndarray:
    """Daily probability that a paid subscriber cancels: falls with core-feature use (the
    decayed daily count), rises with days inactive, after support tickets and while a failed
    charge is being retried."""
    h = (
        CANCEL_BASE[pop.latent[idx]]
        * np.exp(-0.12 * np.minimum(feature_use, 20.0))
        * np.exp(0.06 * np.minimum(days_inactive, 30))
        * np.where(recent_tickets > 0, 1.8, 1.0)
        * np.where(dunning > 0, 3.0, 1.0)
    )
    return np.clip(h, 0.0, 0.5)


def exit_hazard(
    pop: Population,
    idx: np.ndarray,
    plan: np.ndarray,
    days_inactive: np.ndarray,
    milestones: np.ndarray,
    feature_use: np.ndarray,
    recent_tickets: np.ndarray,
    dunning: np.ndarray,
) -> np.ndarray:
    """A subscriber's cancellation hazard, a free or trial user's churn hazard."""
    return np.where(
        plan >= PRO,
        cancel_hazard(pop, idx, days_inactive, feature_use, recent_tickets, dunning),
        churn_hazard(pop, idx, days_inactive, milestones, recent_tickets),
    )


def core_share(pop: Population, idx: np.ndarray, milestones: np.ndarray, unlock_level, core_mask):
    """Chance that one feature event of each user is a core feature (its preferences over the
    features unlocked by its milestones)."""
    w = pop.feature_pref[idx] * (milestones[:, None] > unlock_level[None, :])
    return (w * core_mask[None, :]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)


def upgrade_hazard(
    pop: Population,
    idx: np.ndarray,
    milestones: np.ndarray,
    feature_use: np.ndarray,
    plan: np.ndarray,
) -> np.ndarray:
    """Daily probability that a free/trial user upgrades: tied to feature use and onboarding."""
    h = (
        0.0012
        * UPGRADE_PROPENSITY[pop.latent[idx]]
        * (1.0 + 0.5 * (milestones - 1))
        * (1.0 + np.minimum(feature_use, 25.0) / 4.0)
        * np.where(plan == TRIAL, 3.0, 1.0)
        * SIZE_UPGRADE[pop.size[idx]]
    )
    return np.where(plan >= PRO, 0.0, np.clip(h, 0.0, 0.3))


def milestone_probability(
    pop: Population, idx: np.ndarray, next_milestone: np.ndarray
) -> np.ndarray:
    """Chance that an active user reaches their next milestone today (drop-off by segment)."""
    base = MILESTONE_BASE[np.minimum(next_milestone, len(MILESTONE_BASE) - 1)]
    p = (
        base
        * MILESTONE_PROPENSITY[pop.latent[idx]]
        * SIZE_MILESTONE[pop.size[idx]]
        * ROLE_MILESTONE[pop.role[idx]]
        * CHANNEL_MILESTONE[pop.channel[idx]]
    )
    return np.clip(p, 0.0, 0.95)


def monthly_price(pop: Population, idx: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """Monthly invoice amount in the user's currency."""
    size = pop.size[idx]
    usd = np.where(plan == ENTERPRISE, ENTERPRISE_PRICE[size], PRO_PRICE[size])
    fx = np.array([FX[COUNTRY_CURRENCY[c]] for c in COUNTRIES])[pop.country[idx]]
    return np.round(usd * fx, 2)


def truth_snapshot(
    pop: Population,
    idx: np.ndarray,
    h_churn: np.ndarray,
    h_upgrade: np.ndarray,
    h_cancel_paid: np.ndarray,
    plan: np.ndarray,
    days_since_anchor: np.ndarray,
    conversion_days: int = 28,
    ltv_days: int = 90,
) -> dict[str, np.ndarray]:
    """True 28-day churn, `conversion_days` conversion probabilities and expected revenue over
    `ltv_days` (column names from demo.truth_columns).

    Computed from the hazards the simulation uses on the next day, held constant over the
    horizon (a constant-hazard projection with churn and conversion as competing risks).
    `h_churn` is the exit hazard (a subscriber's cancellation, a free user's churn);
    `h_cancel_paid` the cancellation hazard each user would have as a subscriber."""
    paid = plan >= PRO
    survive = 1.0 - h_churn
    p_churn_28 = 1.0 - survive**28
    total = np.clip(h_churn + h_upgrade, 1e-12, 1.0)
    p_convert = np.where(paid, np.nan, h_upgrade / total * (1.0 - (1.0 - total) ** conversion_days))

    # a charge is revenue unless it fails and no retry recovers it
    paid_share = 1.0 - pop.card_fail_p[idx] * (1.0 - RECOVER_P) ** DUNNING_DAYS
    t = np.arange(1, ltv_days + 1)
    invoices_in_window = ltv_days // 30 + 1
    # Paid users: invoices every 30 days from their anchor, each if still a customer.
    next_inv = 30 - (days_since_anchor % 30)
    revenue_paid = np.zeros(len(idx))
    for k in range(invoices_in_window):
        due = next_inv + 30 * k
        revenue_paid += np.where(due <= ltv_days, survive**due, 0.0)
    revenue_paid *= (
        monthly_price(pop, idx, np.where(plan == ENTERPRISE, ENTERPRISE, PRO)) * paid_share
    )
    # Free/trial users: convert on day t with prob (1-h_c-h_u)^(t-1) h_u, then pay monthly.
    ent_p = SIZE_ENTERPRISE_P[pop.size[idx]]
    exp_price = ent_p * monthly_price(pop, idx, np.full(len(idx), ENTERPRISE)) + (
        1 - ent_p
    ) * monthly_price(pop, idx, np.full(len(idx), PRO))
    paid_survive = 1.0 - h_cancel_paid
    revenue_free = np.zeros(len(idx))
    if (~paid).any():
        f = ~paid
        stay = (1.0 - total[f])[:, None] ** (t[None, :] - 1)
        p_conv_t = stay * h_upgrade[f][:, None]
        invoices = np.zeros((f.sum(), len(t)))
        for k in range(invoices_in_window):
            lag = 30 * k
            ok = (t + lag) <= ltv_days
            invoices += np.where(ok[None, :], paid_survive[f][:, None] ** lag, 0.0)
        revenue_free[f] = (p_conv_t * invoices).sum(axis=1) * exp_price[f] * paid_share[f]
    return {
        churn_column(28): p_churn_28,
        conversion_column(conversion_days): p_convert,
        revenue_column(ltv_days): np.where(paid, revenue_paid, revenue_free),
    }
