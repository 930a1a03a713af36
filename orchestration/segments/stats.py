"""Variant assignment by stable hash, and the statistics used for experiment results."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

import numpy as np

from orchestration.segments.config import Experiment

_TWO_64 = float(2**64)


def hash_unit(experiment: str, user_id: str) -> float:
    """Uniform number in [0, 1) from sha256("<experiment>:<user_id>"): the same on every
    machine, day and run (unlike Python's salted hash())."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _TWO_64


def assign_variants(experiment: Experiment, user_ids: Iterable[str]) -> list[str]:
    """Variant per user: the hash position falls into the cumulative shares (control first)."""
    edges = np.cumsum([v.share for v in experiment.variants])
    edges[-1] = 1.0  # shares add up to 1; guard against float rounding
    units = np.fromiter((hash_unit(experiment.name, u) for u in user_ids), dtype=float)
    index = np.searchsorted(edges, units, side="right")
    names = [v.name for v in experiment.variants]
    return [names[i] for i in index]


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (Wilson 1927; Newcombe 1998, method 3)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of p1 == p2; returns (z, two-sided p-value).
    NaN when undefined (an empty arm or a pooled proportion of 0 or 1)."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return (math.nan, math.nan)
    z = (x1 / n1 - x2 / n2) / se
    return (z, math.erfc(abs(z) / math.sqrt(2)))


def median_or_nan(values: Sequence[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.median(clean)) if clean else math.nan
