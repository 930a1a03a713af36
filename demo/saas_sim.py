"""State of the SaaS demo simulation: the event-name vocabulary (all from the tracking plan),
one day's event buffers and the per-user state the daily loop mutates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from contracts import tracking_plan
from demo import output as out
from demo import saas_model as m

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
# The last reason is the involuntary one (a failed charge not recovered by the retries).
CANCEL_REASONS = (
    "too_expensive",
    "missing_features",
    "switched_tool",
    "no_longer_needed",
    "payment_failed",
)
TICKET_PRIORITIES = ("low", "normal", "high")
TICKET_CATEGORIES = ("billing", "bug", "how_to", "integration", "account")
# Props kinds rendered by demo.output.EVENT_LINE_SQL.
P_GENERIC, P_UPGRADE, P_CANCEL, P_SUPPORT, P_PAGE, P_TRAITS = range(6)
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


class Names:
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


class Events:
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


class Simulation:
    def __init__(
        self,
        users: int,
        days: int,
        seed: int,
        start: date,
        defect_rate: float,
        late_window_days: int,
        extra_days: int = 0,
    ) -> None:
        """`users` sign up over the first `days` days; with `extra_days`, more keep signing
        up after them (`Population.draw_after`), appended without touching the main stream."""
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.days, self.start = days, start
        self.base_users = users  # sets the visitor traffic
        # the truth's forward outcomes (saas_oracle): horizon and Monte Carlo replicas (0 = off)
        self.horizon_days, self.oracle_replicas = 28, 0
        # the truth's conversion and revenue horizons (saas_model.truth_snapshot)
        self.conversion_days, self.ltv_days = 28, 90
        self.defect_rate, self.late_window_days = defect_rate, late_window_days
        self.names = Names()
        self.n_milestones = len(self.names.milestone_events)
        n_features, weekday = len(self.names.features), start.weekday()
        self.pop = m.Population.draw(self.rng, users, days, n_features, weekday)
        self.user_ids = out.seeded_hex_ids(self.rng, users, "usr_")
        self.anonymous_ids = out.seeded_uuids(self.rng, users)
        for day in range(days, days + extra_days):
            later = m.Population.draw_after(seed, users, days, n_features, weekday, day)
            self.pop = self.pop.extended(later)
            ids_rng = np.random.default_rng([seed, 2, day])
            count = len(later.signup_day)
            self.user_ids = np.concatenate(
                [self.user_ids, out.seeded_hex_ids(ids_rng, count, "usr_")]
            )
            self.anonymous_ids = np.concatenate(
                [self.anonymous_ids, out.seeded_uuids(ids_rng, count)]
            )
        self.n = n = len(self.pop.signup_day)
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
        self.dunning = np.zeros(n, np.int64)  # days into the retries of a failed charge
        self.cancel_day = np.full(n, -1)  # last subscription end

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
        """Daily exit hazard (a subscriber's cancellation, a free user's silent churn) and
        upgrade hazard from the current state."""
        return m.exit_hazard(
            self.pop,
            idx,
            self.plan[idx],
            self.days_inactive[idx],
            self.milestones[idx],
            self.feature_use[idx],
            self.tickets_recent[idx],
            self.dunning[idx],
        ), m.upgrade_hazard(
            self.pop, idx, self.milestones[idx], self.feature_use[idx], self.plan[idx]
        )


def day_start_us(day: date) -> int:
    return (day - EPOCH.date()).days * US_PER_DAY
