"""The store demo's observable oracle: the best any model can do from the data segflow sees.

The store's truth columns `p_alive` / `expected_revenue_<h>d` know each customer's hidden
state (still a customer or silently gone, true purchase rate): no model can reach them, since
a quiet customer who left and one who merely buys rarely leave the same data. The Bayes
posterior given what is observable, with the generator's own priors, is the fair ceiling:
for each customer, the likelihood of its observed orders (only the written window: orders
before it are not in the landing data; signup day and channel are in the CRM) under prior draws
of (rate, fading, dropout), with the order value's Gamma-Gamma posterior.

Approximations (small next to the Monte Carlo error): log(1 - e^-r) ~ log r - r/2 for daily
purchase probabilities (r ~ 0.04), and survival to the window's first day as e^(-p R) (dropout
at rate p r per day, continuous).
"""

from __future__ import annotations

import numpy as np

# The store's generating priors (demo.store draws from exactly these).
RATE_SHAPE, RATE_SCALE = 0.9, 1 / 25  # purchase rate per day ~ Gamma
FADING_SHARE, FADE_DAYS = 0.33, 120.0  # a third of the customers' rates fade with age
DROPOUT_BETA = (1.0, 5.0)  # chance of leaving after each repeat order ~ Beta
VALUE_SHAPE, NU_SHAPE, NU_RATE = 4.0, 5.0, 60.0  # order ~ Gamma(4, nu), nu ~ Gamma(5, 60)
REFERRAL_VALUE = 1.3  # referred customers' orders are 1.3x larger
PRIOR_DRAWS = 2000


def _fade_sum(first: np.ndarray, last: np.ndarray, signup: np.ndarray) -> np.ndarray:
    """Sum of exp(-(day - signup) / FADE_DAYS) over days first..last (0 when last < first)."""
    q = np.exp(-1.0 / FADE_DAYS)
    n = np.maximum(last - first + 1, 0)
    return np.exp(-(first - signup) / FADE_DAYS) * (1 - q**n) / (1 - q)


def observable_truth(
    d: int,
    window_start: int,
    signup_day: np.ndarray,
    referral: np.ndarray,
    order_cust: np.ndarray,
    order_day: np.ndarray,
    order_usd: np.ndarray,
    horizons: tuple[int, ...],
    seed: int,
) -> dict[str, np.ndarray]:
    """Posterior P(alive), P(no order in h days) and expected orders / revenue in h days for
    the customers signed up by day `d` (in index order), from the orders written so far."""
    rng = np.random.default_rng([seed, 3])
    lam = rng.gamma(RATE_SHAPE, RATE_SCALE, PRIOR_DRAWS)[None, :]
    fading = (rng.random(PRIOR_DRAWS) < FADING_SHARE)[None, :]
    p = rng.beta(*DROPOUT_BETA, PRIOR_DRAWS)[None, :]
    known = np.flatnonzero(signup_day <= d)
    s = signup_day[known]
    seen = (order_day <= d) & (order_day >= window_start)
    pos = np.searchsorted(known, order_cust[seen])
    days, usd = (
        order_day[seen],
        order_usd[seen] / np.where(referral[order_cust[seen]], REFERRAL_VALUE, 1),
    )
    repeat = days > s[pos]  # the signup order is not a repeat purchase (no dropout after it)
    n = len(known)
    x = np.bincount(pos[repeat], minlength=n)
    last = np.full(n, -1)
    np.maximum.at(last, pos[repeat], days[repeat])
    age = (days[repeat] - s[pos[repeat]]) / FADE_DAYS
    sum_log_fade = -np.bincount(pos[repeat], age, minlength=n)
    fade_at_orders = np.bincount(pos[repeat], np.exp(-age), minlength=n)
    first = np.maximum(s + 1, window_start)  # first observed day a repeat order could happen
    end_gap = np.where(x > 0, last, first - 1)
    # (count, fade sum) of: unobserved days before the window, non-order days up to the last
    # order, days after it, the future horizon
    pre = (np.maximum(window_start - 1 - s, 0), _fade_sum(s + 1, window_start - 1, s))
    gap = (end_gap - first + 1 - x, _fade_sum(first, end_gap, s) - fade_at_orders)
    tail = (d - end_gap, _fade_sum(end_gap + 1, np.full(n, d), s))

    def hazard(span: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return lam * np.where(fading, span[1][:, None], span[0][:, None])

    alive_at_window = np.exp(-p * hazard(pre))
    stay = np.exp(-hazard(tail))
    xs = x[:, None]
    log_orders = xs * np.log(lam) + np.where(fading, sum_log_fade[:, None], 0.0)
    log_orders -= 0.5 * lam * np.where(fading, fade_at_orders[:, None], xs)
    bought = (
        np.log(alive_at_window)
        + log_orders
        - hazard(gap)
        + np.maximum(xs - 1, 0) * np.log1p(-p)
        + np.log(p + (1 - p) * stay)
    )
    quiet = np.log((1 - alive_at_window) + alive_at_window * stay)
    log_like = np.where(xs > 0, bought, quiet)
    weights = np.exp(log_like - log_like.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    p_alive = np.where(
        xs > 0,
        (1 - p) * stay / (p + (1 - p) * stay),
        alive_at_window * stay / ((1 - alive_at_window) + alive_at_window * stay),
    )
    values = np.bincount(pos, usd, minlength=n)
    count = np.bincount(pos, minlength=n)
    mean_order = VALUE_SHAPE * (NU_RATE + values) / (NU_SHAPE - 1 + VALUE_SHAPE * count)
    mean_order *= np.where(referral[known], REFERRAL_VALUE, 1.0)
    out = {"observable_p_alive": np.clip((weights * p_alive).sum(axis=1), 0.0, 1.0)}
    for h in horizons:
        future = hazard((np.full(n, h), _fade_sum(np.full(n, d + 1), np.full(n, d + h), s)))
        orders = p_alive * (1 - np.exp(-p * future)) / p
        out[f"observable_expected_purchases_{h}d"] = (weights * orders).sum(axis=1)
        out[f"observable_expected_revenue_{h}d"] = (
            out[f"observable_expected_purchases_{h}d"] * mean_order
        )
        no_purchase = (weights * (1 - p_alive + p_alive * np.exp(-future))).sum(axis=1)
        out[f"observable_p_no_purchase_{h}d"] = np.clip(no_purchase, 0.0, 1.0)
    return out
