"""Names of the demo truth's oracle columns, derived from the horizon each covers: the
pipeline's horizons are settings, so `bench/model_quality.py` asks the generators for the
horizons it trains on and reads the columns by these names (never a fixed `_90d`)."""

from __future__ import annotations


def conversion_column(days: int) -> str:
    """P(upgrade within `days`) (SaaS)."""
    return f"p_convert_{days}d"


def revenue_column(days: int) -> str:
    """Expected revenue within `days` (SaaS, store)."""
    return f"expected_revenue_{days}d"


def churn_column(days: int) -> str:
    """P(the churn label within `days`): SaaS exit hazard, store inactivity label."""
    return f"p_churn_{days}d"


def observable(column: str) -> str:
    """The store's observable-oracle twin of a truth column (demo.store_oracle)."""
    return f"observable_{column}"
