"""Drift that means something: sampling noise is not drift, a moved distribution is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.drift import feature_drift


def _sample(seed: int, n: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "events_28d": rng.poisson(20 * (1 + shift), n),
            "days_since_signup": rng.integers(0, 365, n),
            "plan": rng.choice(["free", "trial", "pro"], n, p=[0.5, 0.2, 0.3]),
        }
    )


def test_two_samples_of_one_population_do_not_drift() -> None:
    for seed in range(10):
        report = feature_drift(_sample(seed, 300), _sample(seed + 100, 300))
        assert report.passed, (seed, report.table())
        assert 0.05 < report.noise_floor < 0.07


def test_halved_activity_drifts() -> None:
    report = feature_drift(_sample(1, 300), _sample(2, 300, shift=-0.5))
    assert report.drifting == ["events_28d"]
