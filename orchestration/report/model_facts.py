"""The model facts the report and the run summary read, derived from contracts/models.py (the
one place they are written), including the user_scores column each kind fills."""

from __future__ import annotations

from dataclasses import dataclass


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
            spec.score_column,
        )
        for kind, spec in KINDS.items()
    }
