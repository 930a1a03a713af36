"""Time-based train/holdout split: train on earlier snapshots, evaluate on the latest one.

A random split would let the model see the same users' neighbouring weeks and overstate
quality. We also purge training snapshots whose label window reaches into the holdout date,
because at the holdout date those labels would not yet have been known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from ml.features import SNAPSHOT_COLUMN, FeatureError


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_date: date
    train_min_date: date
    train_max_date: date
    purge_days: int
    warnings: list[str] = field(default_factory=list)

    def window_params(self) -> dict[str, str | int]:
        """The data window as flat values for MLflow params."""
        return {
            "train_min_snapshot": self.train_min_date.isoformat(),
            "train_max_snapshot": self.train_max_date.isoformat(),
            "holdout_snapshot": self.holdout_date.isoformat(),
            "purge_days": self.purge_days,
            "train_rows": len(self.train),
            "holdout_rows": len(self.holdout),
            "train_snapshots": int(self.train[SNAPSHOT_COLUMN].nunique()),
        }


def snapshot_dates(df: pd.DataFrame) -> pd.Series:
    if SNAPSHOT_COLUMN not in df.columns:
        raise FeatureError(f"training table lacks {SNAPSHOT_COLUMN!r}; cannot split by time")
    return pd.to_datetime(df[SNAPSHOT_COLUMN]).dt.date


def time_split(
    df: pd.DataFrame,
    label_horizon_days: int,
    holdout_date: date | None = None,
) -> TimeSplit:
    """Hold out `holdout_date` (default: the latest snapshot) and train on snapshots whose
    label window (snapshot + horizon) ends on or before it.

    If the purge leaves no training snapshot (short demo histories), fall back to every
    snapshot strictly before the holdout and say so in `warnings`.
    """
    dates = snapshot_dates(df)
    if dates.empty:
        raise FeatureError("training table is empty: no snapshot dates to split")
    holdout_day = holdout_date or dates.max()
    holdout_mask = dates == holdout_day
    if not holdout_mask.any():
        raise FeatureError(f"holdout date {holdout_day} has no rows in the training table")
    warnings: list[str] = []
    purge = label_horizon_days
    train_mask = dates <= holdout_day - timedelta(days=purge)
    if not train_mask.any():
        purge = 0
        train_mask = dates < holdout_day
        warnings.append(
            f"no snapshot lies {label_horizon_days} days before the holdout {holdout_day}; "
            "trained on all earlier snapshots (their labels overlap the holdout period)"
        )
    if not train_mask.any():
        raise FeatureError(
            f"only one snapshot date ({holdout_day}) in the training table: need at least two "
            "(earlier ones to train on, the latest to evaluate)"
        )
    train_dates = dates[train_mask]
    return TimeSplit(
        train=df.loc[train_mask].reset_index(drop=True),
        holdout=df.loc[holdout_mask].reset_index(drop=True),
        holdout_date=holdout_day,
        train_min_date=train_dates.min(),
        train_max_date=train_dates.max(),
        purge_days=purge,
        warnings=warnings,
    )


def every_k_days(df: pd.DataFrame, every_days: int) -> tuple[pd.DataFrame, list[str]]:
    """The training snapshot rule: the newest labelled snapshot and every `every_days` days
    back from it, over the whole labelled range. Returns (kept rows, notes)."""
    if every_days < 1:
        raise FeatureError(f"snapshot spacing must be at least 1 day, got {every_days}")
    dates = snapshot_dates(df)
    if dates.empty:
        return df, []
    age = (pd.Timestamp(dates.max()) - pd.to_datetime(dates)).dt.days
    keep = (age % every_days == 0).to_numpy()
    kept = sorted(set(dates[keep]))
    notes = []
    if len(kept) < dates.nunique():
        notes.append(
            f"training snapshots: every {every_days} days back from {kept[-1]}: "
            f"{len(kept)} of {dates.nunique()} labelled snapshots"
        )
    return df.loc[keep].reset_index(drop=True), notes
