"""The model facts the report and the run summary read, derived from contracts/models.py (the
one place they are written), including the user_scores column each kind fills."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelFact:
    kind: str
    registered_name: str
    primary_metric: str  # promotion gates on it; higher is better
    horizon_days: int  # the label window (the settings' horizon for the kind)
    score_column: str
    horizon_setting: str | None = None  # the environment variable that sets it

    @property
    def min_history_days(self) -> int:
        """History that guarantees a first training set (contracts.models.min_history_days)."""
        from contracts.models import min_history_days

        return min_history_days(self.horizon_days)


def model_facts(settings: Any = None) -> dict[str, ModelFact]:
    """Kind -> facts, derived from the model kinds' single definition; with `settings`, each
    kind's horizon is the one its label was built with (orchestration.model_inputs)."""
    from contracts.models import KINDS
    from orchestration.model_inputs import label_definition

    out = {}
    for kind, spec in KINDS.items():
        label = label_definition(kind, settings) if settings is not None else None
        out[kind] = ModelFact(
            kind,
            spec.registered_name,
            spec.primary_metric,
            label.horizon_days if label else spec.horizon_days,
            spec.score_column,
            label.horizon_setting if label else None,
        )
    return out
