"""Daily scoring with the champion models into the `user_scores` contract table.

Every known customer = the rows of `fct_user_features` for the score date (churned ones
included, with `is_churned` carried over): each gets exactly one row. Each model scores only
if it has a champion; a model without one leaves its columns null (with a null model version)
and the others score as usual, so one model that cannot train never stops the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from contracts.marts import SCORE_COLUMNS
from contracts.models import CHURN_MODEL, CONVERSION_MODEL, KINDS, LTV_MODEL, ModelKind
from ml import registry, row_blocks
from ml.fast_bins import FeatureColumns
from ml.features import (
    SNAPSHOT_COLUMN,
    USER_COLUMN,
    FeatureError,
    FeatureSpec,
    prepare_features,
    require_columns,
)
from ml.pipeline_predict import PipelinePredict
from ml.reasons import reason_strings

PAID_FLAG_COLUMN = "is_paid"

CHURNED_FLAG_COLUMN = "is_churned"

USER_SCORES_COLUMNS = list(SCORE_COLUMNS)


@dataclass(frozen=True)
class _Champion:
    loaded: registry.LoadedModel
    spec: FeatureSpec
    # One predictor per output kind for the champion's life: the exact tree walker is built
    # and checked once, not once per scored day (a backfill scores each day on its own).
    _predictors: dict[bool, Callable] = field(default_factory=dict, compare=False, repr=False)

    def prepare(self, features: pd.DataFrame) -> pd.DataFrame:
        return prepare_features(features, self.spec)

    def predictor(self, proba: bool) -> Callable:
        if proba not in self._predictors:
            self._predictors[proba] = _predictor(self, proba)
        return self._predictors[proba]


# One _Champion per loaded version (registry.load_by_alias returns the same object while it
# keeps it): the drift check's churn scores reuse the step's checked predictors and bin plans.
_CHAMPIONS: dict[int, _Champion] = {}


def _champion(name: str, tracking_uri: str, required: bool = False) -> _Champion | None:
    try:
        loaded = registry.load_by_alias(name, tracking_uri)
    except registry.ModelNotFoundError:
        if required:
            raise
        return None
    known = _CHAMPIONS.get(id(loaded))
    if known is None or known.loaded is not loaded:
        if len(_CHAMPIONS) >= 8:
            _CHAMPIONS.pop(next(iter(_CHAMPIONS)))
        known = _CHAMPIONS[id(loaded)] = _Champion(
            loaded, FeatureSpec.from_dict(loaded.meta["feature_spec"])
        )
    return known


def assign_bands(values: np.ndarray, bands: dict) -> np.ndarray:
    """`labels[i]` for values below `thresholds[i]`, the last label at or above the last one."""
    labels = np.asarray(bands["labels"], dtype=object)
    index = np.searchsorted(np.asarray(bands["thresholds"], dtype=float), values, side="right")
    return labels[index]


def _active_rows(features_df: pd.DataFrame, score_dates: list[date]) -> pd.DataFrame:
    """The rows to score: one per user per date, ordered by date then user. The checks and
    the order are worked out on the two key columns; the wide frame is copied once."""
    require_columns(features_df, (USER_COLUMN, SNAPSHOT_COLUMN), "fct_user_features")
    # cache=False: pandas' cache check iterates the column as Timestamps (all equal on a day)
    days = pd.to_datetime(features_df[SNAPSHOT_COLUMN], cache=False).dt.normalize().to_numpy()
    keep = np.isin(days, pd.to_datetime(pd.Series(score_dates)).to_numpy())
    users = features_df[USER_COLUMN].to_numpy()[keep]
    key = pd.DataFrame({"day": days[keep], "user": users})
    if key["user"].isna().any():
        raise FeatureError("fct_user_features has rows with null user_id")
    duplicated = key.duplicated(keep=False).to_numpy()
    if duplicated.any():
        examples = sorted({str(u) for u in users[duplicated]})[:5]
        raise FeatureError(
            f"fct_user_features has several rows for user(s) {examples} on one snapshot_date; "
            "expected one row per user per snapshot_date"
        )
    order = _day_user_order(key)
    positions = np.flatnonzero(keep)[order]
    rows = features_df.take(positions).reset_index(drop=True)
    rows["_score_date"] = pd.Series(key["day"].to_numpy()[order]).dt.date
    return rows


def _day_user_order(key: pd.DataFrame) -> np.ndarray:
    """Positions of `key` sorted by day then user: string ids as one fixed-width array
    (numpy compares code points, as Python does), others through pandas."""
    users = key["user"].to_numpy()
    if pd.api.types.infer_dtype(users, skipna=False) == "string":
        fixed, days = users.astype(str), key["day"].to_numpy()
        order = np.lexsort((fixed, days))
        fixed, days = fixed[order], days[order]
        # numpy drops trailing NULs: ids equal only that way are ordered by pandas instead
        if not ((fixed[1:] == fixed[:-1]) & (days[1:] == days[:-1])).any():
            return order
    return key.sort_values(["day", "user"], kind="stable").index.to_numpy()


def _not_paid(rows: pd.DataFrame) -> np.ndarray:
    if PAID_FLAG_COLUMN not in rows.columns:
        raise FeatureError(
            f"fct_user_features lacks {PAID_FLAG_COLUMN!r}; needed to score conversion only "
            "for users not on a paid plan"
        )
    return ~rows[PAID_FLAG_COLUMN].fillna(False).astype(bool).to_numpy()


def score_users(
    features_df: pd.DataFrame,
    tracking_uri: str,
    score_date: date | Sequence[date],
    top_reasons: int = 3,
    n_threads: int | None = 1,
    require_churn: bool = False,
    workers: int | None = None,
) -> pd.DataFrame:
    """Score every active user on `score_date` (or on each of several dates, loading the
    champions once) with the champions; `user_scores` schema.

    Deterministic for the same models and data: rows are sorted by user_id and every model
    and reason computation is free of randomness. `n_threads` caps OpenMP threads (None =
    all cores; see `ml.tracking.train_model`); `workers`: threads for the tree walks' row
    blocks (None: every core; the same results on any number, ml.row_blocks).
    """
    champions = load_champions(tracking_uri, require_churn)  # first: see write_user_scores
    with threadpool_limits(limits=n_threads), row_blocks.limit(workers):
        return score_with(features_df, champions, score_date, top_reasons)


def churn_scores(
    features_df: pd.DataFrame,
    tracking_uri: str,
    score_date: date,
    n_threads: int | None = 1,
    workers: int | None = None,
) -> pd.Series:
    """The churn champion's probabilities alone, rows as `score_users` orders them (the drift
    check's reference day: the other champions' predictions would be thrown away)."""
    churn = load_champions(tracking_uri, require_churn=True)[0]
    with threadpool_limits(limits=n_threads), row_blocks.limit(workers):
        return score_with(features_df, (churn, None, None), score_date, top_reasons=0)[
            KINDS["churn"].score_column
        ]


Champions = tuple["_Champion | None", "_Champion | None", "_Champion | None"]


# The registered models of a Champions tuple, in its order.
CHAMPION_MODELS = (CHURN_MODEL, LTV_MODEL, CONVERSION_MODEL)


def load_champions(tracking_uri: str, require_churn: bool = False) -> Champions:
    """The churn, LTV and conversion champions (None where a model has none)."""
    return (
        _champion(CHURN_MODEL, tracking_uri, required=require_churn),
        _champion(LTV_MODEL, tracking_uri),
        _champion(CONVERSION_MODEL, tracking_uri),
    )


def absent_champions(champions: Champions) -> list[str]:
    """Registered model names of `champions` that have none (their score columns stay null)."""
    return [name for name, found in zip(CHAMPION_MODELS, champions, strict=True) if found is None]


def score_with(
    features_df: pd.DataFrame,
    champions: Champions,
    score_date: date | Sequence[date],
    top_reasons: int = 3,
    predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """`score_users` with champions already loaded (streamed scoring loads them once).

    `predictions`: the champions' scores computed where the data lives (the Spark engine's
    `mlflow.pyfunc.spark_udf`; columns user_id, snapshot_date and the score columns of the
    kinds that have a champion), used instead of predicting here; bands come from them.
    Reason codes still re-predict here, against the local prediction as their base, so they
    rank the same features as on DuckDB."""
    days = [score_date] if isinstance(score_date, date) else score_date
    dates = sorted({pd.Timestamp(day).date() for day in days})  # Timestamps, datetimes or dates
    rows = _active_rows(features_df, dates)
    given = _aligned(rows, predictions) if predictions is not None else {}
    return _score(rows, champions, top_reasons, given)


def _aligned(rows: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, np.ndarray]:
    """The given scores in `rows`' order; a scored row without a prediction is an error."""
    keys = pd.DataFrame(
        {USER_COLUMN: rows[USER_COLUMN].astype(str), "_score_date": rows["_score_date"]}
    )
    given = predictions.assign(
        **{
            USER_COLUMN: predictions[USER_COLUMN].astype(str),
            "_score_date": pd.to_datetime(predictions[SNAPSHOT_COLUMN]).dt.date,
        }
    ).drop(columns=SNAPSHOT_COLUMN)
    merged = keys.merge(given, on=[USER_COLUMN, "_score_date"], how="left", validate="1:1")
    columns = [c for c in given.columns if c not in (USER_COLUMN, "_score_date")]
    missing = merged[columns].isna().all(axis=1) if columns else pd.Series(False, merged.index)
    if len(given) and missing.any():
        example = merged.loc[missing, [USER_COLUMN, "_score_date"]].iloc[0].tolist()
        raise FeatureError(
            f"{int(missing.sum())} scored row(s) have no prediction from the engine's scoring "
            f"(e.g. user {example[0]} on {example[1]})"
        )
    return {c: merged[c].to_numpy(dtype=float) for c in columns}


def missing_champions(tracking_uri: str) -> list[str]:
    """Registered model names that have no champion yet (their score columns stay null)."""
    client = registry.connect(tracking_uri)
    return [
        name
        for name in CHAMPION_MODELS
        if registry.version_by_alias(client, name, registry.CHAMPION) is None
    ]


def _score(
    rows: pd.DataFrame,
    champions: tuple[_Champion | None, _Champion | None, _Champion | None],
    top_reasons: int,
    given: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """All dates in one batch: every model and reason-code predict runs once over all rows."""
    churn, ltv, conversion = champions
    n = len(rows)
    out = pd.DataFrame(
        {
            USER_COLUMN: rows[USER_COLUMN].astype(str),
            "score_date": rows["_score_date"].astype(object),
        }
    )

    given = given or {}
    columns = FeatureColumns(rows)  # each feature column prepared once for every champion
    out = _score_banded(out, columns, churn, KINDS["churn"], top_reasons, given)
    out = _score_banded(out, columns, ltv, KINDS["ltv"], top_reasons, given)

    conversion_column = KINDS["conversion"].score_column
    out[conversion_column] = np.nan
    if conversion is not None and n:
        eligible = _not_paid(rows)
        if eligible.any():
            out.loc[eligible, conversion_column] = (
                given[conversion_column][eligible]
                if conversion_column in given
                else _scores_only(
                    conversion, conversion.predictor(proba=True), columns, np.flatnonzero(eligible)
                )
            )

    for spec, champion in zip(KINDS.values(), champions, strict=True):
        out[spec.model_version_column] = champion.loaded.version if champion else None
    if CHURNED_FLAG_COLUMN in rows.columns:
        out[CHURNED_FLAG_COLUMN] = rows[CHURNED_FLAG_COLUMN].astype("boolean").to_numpy()
    else:
        out[CHURNED_FLAG_COLUMN] = pd.array([pd.NA] * n, dtype="boolean")
    return out[USER_SCORES_COLUMNS]


def _score_banded(
    out: pd.DataFrame,
    columns: FeatureColumns,
    champion: _Champion | None,
    spec: ModelKind,
    top_reasons: int,
    given: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Fill one banded kind's score, band and reason columns (null without a champion)."""
    if champion is None or not len(columns.rows):
        nulls = {spec.score_column: np.nan, spec.band_column: None, spec.reasons_column: None}
        return out.assign(**nulls)
    predict = champion.predictor(proba=spec.task == "classification")
    X = None
    if top_reasons > 0:  # the walk is kept for the reason codes
        X = columns.frame(champion.spec)  # prepare_features, each column prepared once
        fast = isinstance(predict, PipelinePredict)
        local = predict.with_columns(X, columns) if fast else predict(X)
    else:
        local = _scores_only(champion, predict, columns) if spec.score_column not in given else None
    scores = given.get(spec.score_column, local)
    out[spec.score_column] = scores
    out[spec.band_column] = assign_bands(scores, champion.loaded.meta["bands"])
    out[spec.reasons_column] = _reasons(X, champion, predict, top_reasons, local, len(out))
    if isinstance(predict, PipelinePredict):
        predict.forget()  # the champion outlives the batch (_CHAMPIONS): keep no rows
    return out


def _reasons(X, champion: _Champion, predict, top_k: int, base: np.ndarray, rows: int):
    """Top codes per row, over the model's stored reason candidates (all features for models
    trained before candidates were stored); None when reasons are switched off (top_k=0)."""
    if top_k <= 0:
        return np.full(rows, None, dtype=object)
    candidates = champion.loaded.meta.get("reason_features")
    return reason_strings(X, champion.spec, predict, top_k, candidates, base).to_numpy()


def _predictor(champion: _Champion, proba: bool):
    """Fast path for the stock Pipeline(prep, model); any other model via predict(_proba)."""
    model = champion.loaded.model
    if hasattr(model, "named_steps") and "prep" in model.named_steps:
        return PipelinePredict(model, champion.spec, proba)
    return _probability(model) if proba else _revenue(model)


def _scores_only(
    champion: _Champion, predict, columns: FeatureColumns, take: np.ndarray | None = None
) -> np.ndarray:
    """The predictions of the rows (or those at `take`) when no reason codes follow:
    PipelinePredict bins them from the columns and keeps nothing for reasons."""
    if isinstance(predict, PipelinePredict):
        return predict.scores_of(columns, take)
    rows = columns.rows if take is None else columns.rows.take(take)
    return predict(champion.prepare(rows))


def _probability(model):
    return lambda X: model.predict_proba(X)[:, 1]


def _revenue(model):
    return lambda X: np.clip(model.predict(X), 0.0, None)
