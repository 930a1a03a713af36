"""Model kinds: the facts every layer shares about the three models, written once.

A kind's registered MLflow name (`segflow-<kind>`), the dbt mart it trains on, its label
column, task and the metric that picks its champion live here; `ml/`, the orchestration
layer, the CLI, the report and the benchmarks derive them from this module. It imports
nothing of the project.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REGISTERED_NAME_PREFIX = "segflow-"


@dataclass(frozen=True)
class ModelKind:
    """One model: `task` is "classification" or "regression"; `horizon_days` is the default
    label horizon (the churn and conversion marts read theirs from settings); the champion is
    the candidate with the highest `primary_metric` on the holdout; `calibration_metric` is
    logged beside it (lower is better). `score_column` is the user_scores column the kind
    fills; a `banded` kind also fills `<kind>_band` and `<kind>_reasons`. Label and score
    names carry no horizon (it is a setting: `SEGFLOW_LTV_HORIZON_DAYS` for ltv, logged with
    every run as `label_horizon_days`)."""

    kind: str
    training_table: str
    label: str
    task: str
    horizon_days: int
    primary_metric: str
    calibration_metric: str
    score_column: str
    banded: bool = True

    @property
    def registered_name(self) -> str:
        return registered_name(self.kind)

    @property
    def band_column(self) -> str | None:
        return f"{self.kind}_band" if self.banded else None

    @property
    def reasons_column(self) -> str | None:
        return f"{self.kind}_reasons" if self.banded else None

    @property
    def model_version_column(self) -> str:
        return f"{self.kind}_model_version"

    @property
    def score_fields(self) -> tuple[str, ...]:
        """The kind's score, band and reasons columns (those it has), in that order."""
        return tuple(c for c in (self.score_column, self.band_column, self.reasons_column) if c)


KINDS: dict[str, ModelKind] = {
    "churn": ModelKind(
        "churn",
        "ml_churn_training",
        "churned_next_window",
        "classification",
        28,
        "roc_auc",
        "brier",
        "churn_probability",
    ),
    "ltv": ModelKind(
        "ltv",
        "ml_ltv_training",
        "ltv_future",
        "regression",
        90,
        "normalized_gini",
        "calibration_error",
        "ltv_pred",
    ),
    "conversion": ModelKind(
        "conversion",
        "ml_conversion_training",
        "converted_next_window",
        "classification",
        28,
        "roc_auc",
        "brier",
        "conversion_probability",
        banded=False,
    ),
}


def registered_name(kind: str) -> str:
    """`segflow-<kind>`: the MLflow registered model (and experiment) name of a kind."""
    return f"{REGISTERED_NAME_PREFIX}{model_kind(kind).kind}"


def model_kind(kind: str) -> ModelKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}: expected one of {sorted(KINDS)}") from None


def kind_of(name: str) -> str:
    """The kind of a registered name (`segflow-churn` -> `churn`)."""
    return name.removeprefix(REGISTERED_NAME_PREFIX)


def score_fields() -> tuple[str, ...]:
    """Every kind's score, band and reasons columns of user_scores, kind by kind."""
    return tuple(c for spec in KINDS.values() for c in spec.score_fields)


MODEL_NAMES: tuple[str, ...] = tuple(registered_name(kind) for kind in KINDS)
CHURN_MODEL, LTV_MODEL, CONVERSION_MODEL = MODEL_NAMES


@dataclass(frozen=True)
class LabelDefinition:
    """How the training mart's label was built, logged with every run.

    `definition`: e.g. "inactivity" or "cancellation"; `horizon_days` replaces the model
    kind's default horizon (also the purge gap of the time split); `inactive_days`: the
    inactivity threshold used to measure how many positives were already inactive;
    `horizon_setting`: the environment variable that sets the horizon (named in errors)."""

    definition: str
    horizon_days: int
    inactive_days: int | None = None
    description: str = ""
    horizon_setting: str = ""

    def params(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "label_definition": self.definition,
            "label_horizon_days": self.horizon_days,
        }
        if self.inactive_days is not None:
            out["label_inactive_days"] = self.inactive_days
        if self.description:
            out["label_description"] = self.description[:500]
        return out


# Training snapshots: the newest labelled snapshot and every this many days back from it,
# over the whole labelled range (the marts hold weekly snapshots: 7 keeps every one).
TRAINING_SNAPSHOT_EVERY_DAYS = 7
MART_SNAPSHOT_DAYS = 7  # the training marts hold Mondays (ml_label_windows: date_trunc week)
DRIFT_PSI_THRESHOLD = 0.2  # PSI above the noise floor that flags a drifting feature or score
MIN_TRAINING_SNAPSHOTS = 2  # ml.splits.time_split: earlier ones to train on, the newest held out


def min_history_days(horizon_days: int, every_days: int = TRAINING_SNAPSHOT_EVERY_DAYS) -> int:
    """Days of history that guarantee a first training set: the first Monday can fall six
    days after the data starts, then MIN_TRAINING_SNAPSHOTS kept snapshots (spaced by the
    training rule over the Mondays), the newest with its whole label window observed."""
    spacing = math.lcm(MART_SNAPSHOT_DAYS, every_days)
    first_monday = MART_SNAPSHOT_DAYS - 1
    return first_monday + (MIN_TRAINING_SNAPSHOTS - 1) * spacing + horizon_days + 1


def churn_label_description(
    definition: str, horizon_days: int, inactive_days: int, grace_days: int
) -> str:
    """What the churn label and its population mean (dbt macros churn_outcome and
    churn_population build them), for run logs and docs."""
    if definition == "inactivity":
        return (
            f"no activity in the next {horizon_days} days; rows: every customer ever active, "
            f"however long quiet (quiet for {inactive_days}+ days is a feature and the "
            "is_churned flag, not a filter)"
        )
    return (
        f"becomes cancelled within {horizon_days} days (a cancel event, or the last paid "
        f"period ends without renewal, {grace_days} days grace); rows: customers not "
        "cancelled at the snapshot"
    )
