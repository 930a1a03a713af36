"""The classic customer-base baseline: BG/NBD (Fader, Hardie & Lee 2005) for the number of
future transactions and "alive" probability, with Gamma-Gamma (Fader, Hardie & Lee 2005b)
for the spend per transaction.

Implemented here with scipy (maximum likelihood on the closed-form log-likelihoods): neither
`lifetimes` (unmaintained, pins old pandas/scipy) nor PyMC-Marketing (brings PyMC, PyTensor
and a compiler toolchain) fits the project's lock. `CustomerBaseChurn` / `CustomerBaseValue`
wrap it with the scikit-learn predict interface: each training run fits it as a champion
candidate beside the boosted model and the linear baseline (ml.candidates), and when it wins
it is registered as an MLflow pyfunc (ml.customer_base_pyfunc) that serves like the others.

Inputs are the lifetime columns of `fct_user_features` at a snapshot. Times are in weeks;
the customer's "birth" is the first active day (or purchase), signup when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

ACTIVITY_COLUMNS = (
    "active_days_total",
    "days_since_first_active",
    "days_since_last_active",
    "days_since_signup",
)
PURCHASE_COLUMNS = (
    "purchases_total",
    "days_since_first_purchase",
    "days_since_last_purchase",
    "avg_order_value",
    "days_since_signup",
)
MAX_FIT_ROWS = 50_000
WEEK = 7.0


class ClvUnavailable(ValueError):
    """The baseline cannot be computed from this table (missing columns, no transactions)."""


@dataclass(frozen=True)
class Rfm:
    """Per customer: repeat transactions x, time of the last one t_x and age T (weeks)."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray


def rfm(df: pd.DataFrame, count: str, first: str, last: str) -> Rfm:
    n = pd.to_numeric(df[count], errors="coerce").fillna(0).to_numpy(float)
    signup = pd.to_numeric(df["days_since_signup"], errors="coerce").fillna(0).to_numpy(float)
    since_first = pd.to_numeric(df[first], errors="coerce").to_numpy(float)
    since_last = pd.to_numeric(df[last], errors="coerce").to_numpy(float)
    has = n > 0
    T = np.where(has & np.isfinite(since_first), since_first, signup)
    T = np.maximum(T, 0.0) / WEEK + 1.0 / WEEK  # the birth day counts as one day of exposure
    t_x = (
        np.where(
            has & np.isfinite(since_first) & np.isfinite(since_last), since_first - since_last, 0.0
        )
        / WEEK
    )
    t_x = np.clip(t_x, 0.0, T)
    x = np.maximum(n - 1.0, 0.0)
    return Rfm(x=x, t_x=np.where(x > 0, t_x, 0.0), T=T)


def _bgnbd_negll(log_params: np.ndarray, data: Rfm, penalty: float) -> float:
    r, alpha, a, b = np.exp(log_params)
    x, t_x, T = data.x, data.t_x, data.T
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    ll = a1 + a2 + np.logaddexp(a3, a4)
    return -float(np.mean(ll)) + penalty * float(np.sum(np.exp(log_params) ** 2))


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(cls, data: Rfm, penalty: float = 1e-4) -> BgNbd:
        if not np.any(data.x > 0):
            raise ClvUnavailable("no customer has a repeat transaction")
        best = None
        for start in (np.log([1.0, 1.0, 1.0, 1.0]), np.log([0.5, 5.0, 0.5, 3.0])):
            result = minimize(
                _bgnbd_negll, start, args=(data, penalty), method="L-BFGS-B", bounds=[(-8, 6)] * 4
            )
            if best is None or result.fun < best.fun:
                best = result
        return cls(*np.exp(best.x))

    def p_alive(self, data: Rfm) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x, t_x, T = data.x, data.t_x, data.T
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(
                x > 0,
                np.exp(
                    np.log(a)
                    - np.log(np.maximum(b + x - 1, 1e-12))
                    + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
                ),
                0.0,
            )
        return 1.0 / (1.0 + ratio)

    def p_no_transaction(self, data: Rfm, horizon_weeks: float) -> np.ndarray:
        """P(no transaction in (T, T + horizon]): dead, or alive and quiet by chance."""
        alive = self.p_alive(data)
        quiet = ((self.alpha + data.T) / (self.alpha + data.T + horizon_weeks)) ** (self.r + data.x)
        return (1.0 - alive) + alive * quiet

    def expected_transactions(self, data: Rfm, horizon_weeks: float) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x, t_x, T, t = data.x, data.t_x, data.T, horizon_weeks
        head = (a + b + x - 1) / (a - 1 if abs(a - 1) > 1e-6 else 1e-6)  # a < 1 is valid
        z = t / (alpha + T + t)
        tail = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
            r + x, b + x, a + b + x - 1, z
        )
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            denom = 1.0 + np.where(
                x > 0,
                (a / np.maximum(b + x - 1, 1e-12)) * ((alpha + T) / (alpha + t_x)) ** (r + x),
                0.0,
            )
        out = head * tail / denom
        return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0), 0.0, None)


def _gg_negll(log_params: np.ndarray, x: np.ndarray, m: np.ndarray, penalty: float) -> float:
    p, q, v = np.exp(log_params)
    ll = (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(v + m * x)
    )
    return -float(np.mean(ll)) + penalty * float(np.sum(np.exp(log_params) ** 2))


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float

    @classmethod
    def fit(cls, frequency: np.ndarray, monetary: np.ndarray, penalty: float = 1e-4) -> GammaGamma:
        keep = (frequency > 0) & (monetary > 0) & np.isfinite(monetary)
        if keep.sum() < 10:
            raise ClvUnavailable(f"{int(keep.sum())} customers with spend; Gamma-Gamma needs 10")
        x, m = frequency[keep], monetary[keep]
        start = np.log([1.0, 3.0, float(np.median(m))])
        result = minimize(
            _gg_negll,
            start,
            args=(x, m, penalty),
            method="L-BFGS-B",
            bounds=[(-6, 8), (np.log(1.01), 8), (-8, 16)],
        )
        return cls(*np.exp(result.x))

    def expected_spend(self, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
        population = self.p * self.v / max(self.q - 1, 1e-6)
        m = np.nan_to_num(monetary, nan=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            conditional = (self.v + m * frequency) * self.p / (self.p * frequency + self.q - 1)
        return np.where(frequency > 0, conditional, population)


def _require(df: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ClvUnavailable(f"feature table lacks {missing}")


def _numbers(df: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(df[column], errors="coerce").to_numpy(float)


class CustomerBaseChurn(ClassifierMixin, BaseEstimator):
    """BG/NBD as a churn classifier with the scikit-learn predict_proba interface:
    P(no activity in the next `horizon_days`), the inactivity churn outcome (a proxy for
    cancellation)."""

    columns = ACTIVITY_COLUMNS
    _rfm = ("active_days_total", "days_since_first_active", "days_since_last_active")

    def __init__(self, horizon_days: int = 28):
        self.horizon_days = horizon_days

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> CustomerBaseChurn:
        _require(X, self.columns)
        self.model = BgNbd.fit(rfm(_sample(X), *self._rfm))
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.model.p_no_transaction(rfm(X, *self._rfm), self.horizon_days / WEEK)
        p = np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])


class CustomerBaseValue(RegressorMixin, BaseEstimator):
    """BG/NBD expected purchases x Gamma-Gamma expected spend: revenue over the horizon."""

    columns = PURCHASE_COLUMNS
    _rfm = ("purchases_total", "days_since_first_purchase", "days_since_last_purchase")

    def __init__(self, horizon_days: int = 90):
        self.horizon_days = horizon_days

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> CustomerBaseValue:
        _require(X, self.columns)
        rows = _sample(X)
        self.model = BgNbd.fit(rfm(rows, *self._rfm))
        count = np.nan_to_num(_numbers(rows, "purchases_total"), nan=0.0)
        self.spend = GammaGamma.fit(count, _numbers(rows, "avg_order_value"))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        count = np.nan_to_num(_numbers(X, "purchases_total"), nan=0.0)
        value = self.spend.expected_spend(count, _numbers(X, "avg_order_value"))
        expected = self.model.expected_transactions(rfm(X, *self._rfm), self.horizon_days / WEEK)
        return np.clip(np.nan_to_num(expected * value, nan=0.0), 0.0, None)


def _sample(X: pd.DataFrame) -> pd.DataFrame:
    return X.sample(n=MAX_FIT_ROWS, random_state=0) if len(X) > MAX_FIT_ROWS else X


def customer_base_model(kind: str, horizon_days: int) -> CustomerBaseChurn | CustomerBaseValue:
    """The unfitted customer-base candidate of a model kind (churn or ltv)."""
    if kind == "churn":
        return CustomerBaseChurn(horizon_days)
    if kind == "ltv":
        return CustomerBaseValue(horizon_days)
    raise ClvUnavailable(f"no customer-base model for {kind}")
