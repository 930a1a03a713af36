"""Who holds the `champion` alias after a training run, kept free of MLflow.

The run's winner (the best of its candidates on the holdout, ml.candidates.select) becomes
champion, a first version included, unless the current champion scores strictly better on
the same holdout. The current champion's figure is comparable when it was selected on the
same holdout snapshot (its logged figure) or its refit window ends before the holdout
(re-scored); otherwise it has seen the holdout, its figure would be optimistic, and the run's
winner (trained on newer labels) takes over. Higher primary metric is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    challenger_version: str
    previous_champion_version: str | None
    primary_metric: str
    winner: str
    challenger_score: float
    champion_score: float | None
    trailing: list[str] = field(default_factory=list)

    @property
    def champion_version(self) -> str:
        """The version holding the champion alias after the decision."""
        if self.promoted or self.previous_champion_version is None:
            return self.challenger_version
        return self.previous_champion_version

    def as_tags(self) -> dict[str, str]:
        return {
            "segflow.promotion.promoted": str(self.promoted).lower(),
            "segflow.promotion.reason": self.reason[:4000],
            "segflow.promotion.winner": self.winner,
            "segflow.promotion.previous_champion": self.previous_champion_version or "none",
            "segflow.promotion.champion_after": self.champion_version,
            "segflow.champion_trails": ", ".join(self.trailing) or "none",
        }

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            f"challenger_{self.primary_metric}": self.challenger_score,
            "promoted": 1.0 if self.promoted else 0.0,
            "champion_trails_a_candidate": 1.0 if self.trailing else 0.0,
        }
        if self.champion_score is not None:
            metrics[f"champion_{self.primary_metric}"] = self.champion_score
        return metrics


def decide(
    primary_metric: str,
    winner: str,
    selection_reason: str,
    challenger_score: float,
    challenger_version: str,
    champion_version: str | None,
    champion_score: float | None,
    champion_note: str | None = None,
    trailing: list[str] | None = None,
) -> PromotionDecision:
    """Apply the rule. `champion_score` is the current champion's figure on this holdout
    (None when there is none or it is not comparable: `champion_note` says why)."""
    if champion_version is None:
        promoted, reason = True, f"first version; {selection_reason}"
    elif champion_score is None or math.isnan(champion_score):
        promoted = True
        reason = f"{selection_reason}; current champion v{champion_version} not compared " + (
            f"({champion_note})" if champion_note else f"({primary_metric} undefined)"
        )
    elif not math.isnan(challenger_score) and challenger_score >= champion_score:
        promoted = True
        reason = (
            f"{selection_reason}; beats or ties current champion v{champion_version} "
            f"({champion_score:.4f})"
        )
    else:
        promoted = False
        reason = (
            f"current champion v{champion_version} {primary_metric} {champion_score:.4f} beats "
            f"this run's best candidate ({winner} {challenger_score:.4f}); it stays champion"
        )
    return PromotionDecision(
        promoted=promoted,
        reason=reason,
        challenger_version=challenger_version,
        previous_champion_version=champion_version,
        primary_metric=primary_metric,
        winner=winner,
        challenger_score=challenger_score,
        champion_score=champion_score,
        trailing=list(trailing or []),
    )
