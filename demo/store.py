"""Demo profile "store": a repeat-purchase shop (`segflow demo-data --profile store`).

Customers buy every few weeks to months and leave silently, as in the BG/NBD story but with
heterogeneity the classic model does not assume everywhere:
- purchase rate lambda_i ~ Gamma(0.9, 1/25 per day) (mean one order every ~4 weeks), drifting
  down with age for a third of the customers ("fading" ones);
- after each repeat order the customer drops out with probability p_i ~ Beta(1, 5);
- order value z ~ Gamma(4, nu_i), nu_i ~ Gamma(5, 1/60) (mean order ~ $60, per-customer level),
  a little higher for customers acquired through referrals;
- activity = orders: every order day has a sign-in and 1-3 views; there is no other activity.

Landing layout and formats are the SaaS demo's (`demo/saas.py`): events
(JSON lines), CRM contacts (CSV; plan is always `free`, no subscriptions), billing invoices
(one paid invoice per order, a one-day period). The product is in steady state on the first
day: customers signed up during `history_days` before it, and the first day carries a CRM
export of all of them.

Ground truth (`truth_dir`, never under `out_dir`): `truth_weekly.parquet` per Monday of the
window and customer signed up by then: alive, purchase rate, dropout probability, mean order
value, `p_alive`, `expected_purchases_<h>d` and `expected_revenue_<h>d` (h = 90, 365,
`horizon_days` and `ltv_horizon_days`), `p_no_purchase_<horizon>d`, and `p_churn_<horizon>d`,
the probability of the churn label under the inactivity definition (`inactive_days` without an
order, reached within `horizon_days`); names from demo.truth_columns;
`truth_users.parquet` per customer (rates, churn date).
Run segflow on it with `SEGFLOW_CHURN_DEFINITION=inactivity` and
`SEGFLOW_CHURN_INACTIVE_DAYS=<inactive_days>` (default 90).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.raw import CRM_CONTACTS
from demo import store_oracle as so
from demo.truth_columns import churn_column, revenue_column

TABLE_DIRS = ("events", "crm_contacts", "billing_invoices")
DEFAULT_HISTORY_DAYS = 180
DEFAULT_INACTIVE_DAYS = 90
INDUSTRIES = ("retail", "software", "education", "finance", "healthcare")
SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
COUNTRIES = ("US", "GB", "DE", "FR")
CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR"}
FX_TO_USD = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}
CHANNELS = ("organic", "paid_search", "referral", "partner")
ROLES = ("consumer", "manager", "founder")
CONTACT_COLUMNS = tuple(CRM_CONTACTS.columns)  # the raw contract's columns


@dataclass
class StoreSummary:
    out_dir: Path
    truth_dir: Path
    users: int
    days: int
    seed: int
    start: date
    end: date
    history_days: int
    rows: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {v:,}" for k, v in self.rows.items())
        return (
            f"store demo: {self.users:,} customers, {self.start} .. {self.end} "
            f"({self.days} days after {self.history_days} simulated), seed {self.seed}: "
            f"{counts}; {self.elapsed_seconds:.1f}s -> {self.out_dir} (truth {self.truth_dir})"
        )


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def generate_store(
    out_dir: Path,
    truth_dir: Path,
    users: int,
    days: int,
    seed: int,
    start: date,
    history_days: int = DEFAULT_HISTORY_DAYS,
    inactive_days: int = DEFAULT_INACTIVE_DAYS,
    horizon_days: int = 28,
    ltv_horizon_days: int = 90,
) -> StoreSummary:
    """Write `days` daily partitions from `start` for `users` customers and the truth."""
    t0 = time.perf_counter()
    horizons = tuple(sorted({90, 365, horizon_days, ltv_horizon_days}))
    out_dir, truth_dir = Path(out_dir).resolve(), Path(truth_dir).resolve()
    if truth_dir == out_dir or out_dir in truth_dir.parents:
        raise ValueError(f"truth_dir {truth_dir} must not be inside out_dir {out_dir}")
    if users < 1 or days < 1 or history_days < 0:
        raise ValueError(
            f"users={users}, days={days}, history_days={history_days}: "
            "users and days must be >= 1, history_days >= 0"
        )
    for table in TABLE_DIRS:
        shutil.rmtree(out_dir / table, ignore_errors=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = history_days + days
    sim_start = start - timedelta(days=history_days)

    # Customers: 60% signed up during the history, the rest during the window.
    n = users
    existing = rng.random(n) < (0.6 if history_days else 0.0)
    signup_day = np.where(
        existing, rng.integers(0, max(history_days, 1), n), history_days + rng.integers(0, days, n)
    )
    lam0 = rng.gamma(so.RATE_SHAPE, so.RATE_SCALE, n)
    fading = rng.random(n) < so.FADING_SHARE
    dropout = rng.beta(*so.DROPOUT_BETA, n)
    channel = rng.integers(0, len(CHANNELS), n)
    referral = channel == CHANNELS.index("referral")
    nu = rng.gamma(so.NU_SHAPE, 1 / so.NU_RATE, n) / np.where(referral, so.REFERRAL_VALUE, 1.0)
    shape = so.VALUE_SHAPE
    country = rng.integers(0, len(COUNTRIES), n)
    ids = np.array(
        [
            f"cus_{uuid.UUID(int=int(x)).hex[-12:]}"
            for x in rng.integers(0, 2**63 - 1, n, dtype=np.int64)
        ]
    )
    signup_second = rng.integers(8 * 3600, 22 * 3600, n)
    alive = np.ones(n, dtype=bool)
    churn_day = np.full(n, -1)
    last_order = np.full(n, -1)

    def rate(d: int) -> np.ndarray:
        age = np.maximum(d - signup_day, 0)
        return lam0 * np.where(fading, np.exp(-age / so.FADE_DAYS), 1.0)

    def day_dt(d: int) -> datetime:
        return datetime.combine(sim_start + timedelta(days=d), datetime.min.time())

    rows = dict.fromkeys(TABLE_DIRS, 0)
    truth_parts: list[pd.DataFrame] = []
    order_log: tuple[list, list, list] = ([], [], [])  # written orders: customer, day, USD
    msg = 0
    for d in range(total):
        day = sim_start + timedelta(days=d)
        signs = np.flatnonzero(signup_day == d)
        active = np.flatnonzero((signup_day < d) & alive)
        buys = active[rng.random(len(active)) < 1 - np.exp(-rate(d)[active])]
        # dropout after each repeat order (the customer may leave silently after buying)
        leaving = buys[rng.random(len(buys)) < dropout[buys]]
        alive[leaving] = False
        churn_day[leaving] = d
        orders = np.concatenate([signs, buys])  # the first order comes with the signup
        last_order[orders] = d
        if d < history_days:
            continue
        tag = day.isoformat()
        # CRM: new customers today; on the first written day also every existing customer
        contact_pos = signs if d > history_days else np.flatnonzero(signup_day <= d)
        base = day_dt(d)
        signup_at = [
            day_dt(int(signup_day[i])) + timedelta(seconds=int(signup_second[i]))
            for i in contact_pos
        ]
        contacts = pd.DataFrame(
            {
                "user_id": ids[contact_pos],
                "email": [f"{u}@example.com" for u in ids[contact_pos]],
                "signup_at": signup_at,
                "company": "",
                "industry": np.array(INDUSTRIES)[contact_pos % len(INDUSTRIES)],
                "company_size": "1-10",
                "country": np.array(COUNTRIES)[country[contact_pos]],
                "role": np.array(ROLES)[contact_pos % len(ROLES)],
                "plan": "free",
                "acquisition_channel": np.array(CHANNELS)[channel[contact_pos]],
                "updated_at": [max(s, base) for s in signup_at],
            },
            columns=list(CONTACT_COLUMNS),
        )
        path = out_dir / f"crm_contacts/dt={tag}/contacts-{tag}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        contacts.assign(
            signup_at=pd.to_datetime(contacts["signup_at"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            updated_at=pd.to_datetime(contacts["updated_at"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ).to_csv(path, index=False)
        rows["crm_contacts"] += len(contacts)
        # Events and invoices of today's orders
        lines: list[str] = []
        invoice_rows = []
        for i in orders:
            first = signup_day[i] == d
            ts = base + timedelta(
                seconds=int(signup_second[i]) if first else int(rng.integers(7 * 3600, 22 * 3600))
            )
            names = (["Account Created"] if first else []) + ["Signed In"]
            names += ["Dashboard Viewed"] * int(rng.integers(1, 4))
            if first:
                msg += 1
                lines.append(
                    json.dumps(
                        {
                            "messageId": f"st-{seed}-{msg}",
                            "type": "identify",
                            "userId": ids[i],
                            "anonymousId": f"anon-{ids[i]}",
                            "timestamp": _iso(ts),
                            "receivedAt": _iso(ts + timedelta(seconds=1)),
                            "properties": {},
                            "context": {"traits": {"email": f"{ids[i]}@example.com"}},
                        }
                    )
                )
            for k, name in enumerate(names):
                msg += 1
                at = ts + timedelta(minutes=2 * k + 1)
                lines.append(
                    json.dumps(
                        {
                            "messageId": f"st-{seed}-{msg}",
                            "type": "track",
                            "event": name,
                            "userId": ids[i],
                            "anonymousId": f"anon-{ids[i]}",
                            "timestamp": _iso(at),
                            "receivedAt": _iso(at + timedelta(seconds=1)),
                            "properties": {},
                            "context": {},
                        }
                    )
                )
            currency = CURRENCY[COUNTRIES[country[i]]]
            usd = float(rng.gamma(shape, 1 / nu[i]))
            for log, value in zip(order_log, (i, d, usd), strict=True):
                log.append(value)
            paid = ts + timedelta(minutes=12)
            invoice_rows.append(
                {
                    "invoice_id": f"ord_{seed}_{msg}",
                    "user_id": ids[i],
                    "amount": round(usd / FX_TO_USD[currency], 2),
                    "currency": currency,
                    "status": "paid",
                    "period_start": paid,
                    "period_end": paid + timedelta(days=1),
                    "paid_at": paid,
                }
            )
        path = out_dir / f"events/dt={tag}/events-{tag}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines))
        rows["events"] += len(lines)
        if invoice_rows:
            path = out_dir / f"billing_invoices/dt={tag}/invoices-{tag}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame(invoice_rows)
            for column in ("period_start", "period_end", "paid_at"):
                frame[column] = pd.to_datetime(frame[column])
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            rows["billing_invoices"] += len(frame)
        if day.weekday() == 0:  # truth at the end of each Monday of the window
            truth_parts.append(
                _truth(
                    day,
                    d,
                    signup_day,
                    alive,
                    last_order,
                    rate(d),
                    dropout,
                    shape / nu,
                    ids,
                    inactive_days,
                    horizon_days,
                    horizons,
                ).assign(
                    **so.observable_truth(
                        d,
                        history_days,
                        signup_day,
                        referral,
                        *(np.array(v) for v in order_log),
                        horizons=horizons,
                        seed=seed,
                    )
                )
            )

    weekly = pd.concat(truth_parts, ignore_index=True) if truth_parts else pd.DataFrame()
    weekly.to_parquet(truth_dir / "truth_weekly.parquet", index=False)
    signed = signup_day < total
    pd.DataFrame(
        {
            "user_id": ids[signed],
            "purchase_rate_daily": lam0[signed],
            "fading": fading[signed],
            "dropout_p": dropout[signed],
            "mean_order_usd": (shape / nu)[signed],
            "signup_date": [sim_start + timedelta(days=int(x)) for x in signup_day[signed]],
            "churn_date": [
                sim_start + timedelta(days=int(x)) if x >= 0 else None for x in churn_day[signed]
            ],
        }
    ).to_parquet(truth_dir / "truth_users.parquet", index=False)
    return StoreSummary(
        out_dir,
        truth_dir,
        users,
        days,
        seed,
        start,
        start + timedelta(days=days - 1),
        history_days,
        rows,
        time.perf_counter() - t0,
    )


def _expected_purchases(lam: np.ndarray, p: np.ndarray, t: float) -> np.ndarray:
    """Expected orders in t days for an alive customer with rate lam who leaves with
    probability p after each order: (1 - exp(-lam p t)) / p."""
    return (1 - np.exp(-lam * p * t)) / np.maximum(p, 1e-9)


def _truth(
    day: date,
    d: int,
    signup_day: np.ndarray,
    alive: np.ndarray,
    last_order: np.ndarray,
    lam: np.ndarray,
    p: np.ndarray,
    mean_order: np.ndarray,
    ids: np.ndarray,
    inactive_days: int,
    horizon_days: int,
    horizons: tuple[int, ...],
) -> pd.DataFrame:
    """Truth at the end of `day` (rates frozen at today's value; fading makes them optimistic);
    expected purchases and revenue over each of `horizons`."""
    known = np.flatnonzero(signup_day <= d)
    live = alive[known].astype(float)
    recency = d - last_order[known]
    out = {
        "user_id": ids[known],
        "snapshot_date": day,
        "alive": alive[known],
        "purchase_rate_daily": lam[known],
        "dropout_p": p[known],
        "mean_order_usd": mean_order[known],
        "p_alive": live,
    }
    for h in horizons:
        purchases = live * _expected_purchases(lam[known], p[known], h)
        out[f"expected_purchases_{h}d"] = purchases
        out[revenue_column(h)] = purchases * mean_order[known]
    out[f"p_no_purchase_{horizon_days}d"] = 1 - live + live * np.exp(-lam[known] * horizon_days)
    # churn label (inactivity): no order for inactive_days, reached within the horizon, for
    # customers not yet inactive; it needs no order in the next (inactive_days - recency) days
    gap = inactive_days - recency
    reachable = (gap >= 1) & (gap <= horizon_days)
    quiet = 1 - live + live * np.exp(-lam[known] * np.maximum(gap, 0))
    out[churn_column(horizon_days)] = np.where(reachable, quiet, 0.0)
    out["already_churned"] = recency >= inactive_days
    return pd.DataFrame(out)
