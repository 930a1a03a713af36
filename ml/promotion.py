"""The champion/challenger rule, kept free of MLflow so it can be read and tested on its own.

A challenger replaces the champion only if, on the same holdout, it beats the champion's
primary metric by `min_improvement` and is not worse in calibration by more than
`calibration_tolerance`. The first version of a model becomes champion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PromotionPolicy:
    """Thresholds for promotion. Calibration metric: Brier for probabilities, |total
    predicted / total actual - 1| for revenue (both: lower is better)."""

    min_improvement: float = 0.002
    calibration_tolerance: float = 0.005


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    challenger_version: str
    previous_champion_version: str | None
    primary_metric: str
    challenger_score: float
    champion_score: float | None
    calibration_metric: str
    challenger_calibration: float
    champion_calibration: float | None

    @property
    def champion_version(self) -> str:
        """The version holding the champion alias after the decision."""
        if self.promoted or self.previous_champion_version is None:
            return self.challenger_version
        return self.previous_champion_version

    def as_tags(self) -> dict[str, str]:
        return {
            "segflow.promotion.promoted": str(self.promoted).lower(),
            "segflow.promotion.reason": self.reason,
            "segflow.promotion.previous_champion": self.previous_champion_version or "none",
            "segflow.promotion.champion_after": self.champion_version,
        }

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            f"challenger_{self.primary_metric}": self.challenger_score,
            f"challenger_{self.calibration_metric}": self.challenger_calibration,
            "promoted": 1.0 if self.promoted else 0.0,
        }
        if self.champion_score is not None:
            metrics[f"champion_{self.primary_metric}"] = self.champion_score
        if self.champion_calibration is not None:
            metrics[f"champion_{self.calibration_metric}"] = self.champion_calibration
        return metrics


def decide(
    policy: PromotionPolicy,
    primary_metric: str,
    calibration_metric: str,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    challenger_version: str,
    champion_version: str | None,
    champion_error: str | None = None,
) -> PromotionDecision:
    """Apply the rule. `champion` holds the current champion's metrics on this holdout
    (None when there is no champion, or when it could not score this data: `champion_error`)."""
    new_score = challenger[primary_metric]
    new_calibration = challenger[calibration_metric]
    old_score = champion[primary_metric] if champion else None
    old_calibration = champion[calibration_metric] if champion else None

    if champion_version is None:
        promoted, reason = True, "first version: no champion yet"
    elif champion is None:
        promoted, reason = True, f"champion cannot score the current data ({champion_error})"
    elif math.isnan(new_score):
        promoted, reason = False, f"challenger {primary_metric} undefined on this holdout"
    elif not math.isnan(old_score) and new_score < old_score + policy.min_improvement:
        promoted = False
        reason = (
            f"{primary_metric} {new_score:.4f} does not beat champion {old_score:.4f} "
            f"by {policy.min_improvement}"
        )
    elif (
        not math.isnan(old_calibration)
        and new_calibration > old_calibration + policy.calibration_tolerance
    ):
        promoted = False
        reason = (
            f"{calibration_metric} {new_calibration:.4f} worse than champion "
            f"{old_calibration:.4f} beyond tolerance {policy.calibration_tolerance}"
        )
    else:
        promoted = True
        reason = (
            f"{primary_metric} {new_score:.4f} beats champion "
            f"{old_score:.4f} by >= {policy.min_improvement}; calibration ok"
        )
    return PromotionDecision(
        promoted=promoted,
        reason=reason,
        challenger_version=challenger_version,
        previous_champion_version=champion_version,
        primary_metric=primary_metric,
        challenger_score=new_score,
        champion_score=old_score,
        calibration_metric=calibration_metric,
        challenger_calibration=new_calibration,
        champion_calibration=old_calibration,
    )
