"""Sync safety and retry knobs (one place; sync.py, plan.py and the wiring read them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..settings import SYNC_MAX_ATTEMPTS, SYNC_MAX_CHANGE_SHARE
from .payload import PayloadOptions


@dataclass(frozen=True)
class SyncOptions:
    """Safety and retry knobs. The circuit breaker compares the people whose acknowledged
    targeting would change or be cleared (a change of scores only does not count:
    payload.SCORE_ONLY_ATTRIBUTES) with the people the destination already knows
    (non-empty sync_state); the first sync (nothing known yet) is exempt unless
    `breaker_on_first_sync`, and populations below `breaker_min_known` are never blocked."""

    max_change_share: float = SYNC_MAX_CHANGE_SHARE
    breaker_on_first_sync: bool = False
    breaker_min_known: int = 0
    max_attempts: int = SYNC_MAX_ATTEMPTS
    sample_size: int = 5
    payload: PayloadOptions = field(default_factory=PayloadOptions)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SyncOptions:
        options = cls(
            max_change_share=settings.sync_max_change_share,
            max_attempts=settings.sync_max_attempts,
            payload=PayloadOptions(segment_reasons=settings.sync_segment_reasons),
        )
        return replace(options, **overrides)
