"""The model facts the report and the run summary read, derived from contracts/models.py (the
one place they are written), plus the user_scores column each kind fills."""

from __future__ import annotations

from dataclasses import dataclass

# The user_scores column each kind fills (the scoring contract's name for it).
SCORE_COLUMNS = {
    "churn": "churn_probability",
    "ltv": "ltv_90d",
    "conversion": "conversion_probability",
}


@dataclass(frozen=True)
class ModelFact:
    kind: str
    registered_name: str
    primary_metric: str  # promotion gates on it; higher is better
    horizon_days: int  # the label window: history a first training set needs at least
    score_column: str


def model_facts() -> dict[str, ModelFact]:
    """Kind -> facts, derived from the model kinds' single definition."""
    from contracts.models import KINDS

    return {
        kind: ModelFact(
            kind,
            spec.registered_name,
            spec.primary_metric,
            spec.horizon_days,
            SCORE_COLUMNS.get(kind, ""),
        )
        for kind, spec in KINDS.items()
    }
