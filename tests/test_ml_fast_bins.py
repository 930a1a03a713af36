"""Scores from bins computed straight from the feature rows (ml.fast_bins) equal scikit-learn's
predict_proba / predict of the prepared rows, bit for bit: missing, infinite and nullable
numbers, booleans as objects, missing, rare and unseen categories, a subset of rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import StandardScaler
from support.ml_marts import synthetic_marts

from contracts.models import model_kind
from ml import row_blocks
from ml.estimators import calibrated_classifier, revenue_regressor
from ml.fast_bins import BinPlan, FeatureColumns
from ml.features import infer_feature_spec, prepare_features
from ml.pipeline_predict import PipelinePredict

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def marts():
    return synthetic_marts(n_users=600, n_weeks=8, seed=11)


def _awkward(rows: pd.DataFrame, spec, seed: int) -> pd.DataFrame:
    """The rows with what a warehouse can hold: NaN, +-inf, nullable ints with NA, booleans
    as objects with None, null / unseen categories."""
    rng = np.random.default_rng(seed)
    rows = rows.copy()
    for i, name in enumerate(spec.numeric[:8]):
        hit = rng.random(len(rows)) < 0.15
        if pd.api.types.is_float_dtype(rows[name].dtype):
            rows.loc[hit, name] = [np.nan, np.inf, -np.inf][i % 3]
        else:
            rows[name] = rows[name].astype("Int64").mask(hit)
    if spec.boolean:
        name = spec.boolean[0]
        rows[name] = rows[name].astype(object).mask(rng.random(len(rows)) < 0.2, None)
    for i, name in enumerate(spec.categorical[:3]):
        hit = rng.random(len(rows)) < 0.1
        rows[name] = rows[name].astype(object).mask(hit, None if i % 2 else f"unseen-{i}")
    return rows


@pytest.fixture(scope="module", params=["churn", "ltv"])
def fitted(request, marts):
    kind = request.param
    train = marts["ml_churn_training" if kind == "churn" else "ml_ltv_training"]
    spec = infer_feature_spec(train)
    y = train[model_kind(kind).label].astype(float)
    awkward = _awkward(train, spec, seed=3)
    if kind == "churn":
        model = calibrated_classifier(spec, len(train))
    else:
        model = revenue_regressor(spec, len(train))
    return kind, spec, model.fit(prepare_features(awkward, spec), y), _awkward(train, spec, 4)


def _sklearn(kind, model, frame):
    if kind == "churn":
        return model.predict_proba(frame)[:, 1]
    return np.clip(model.predict(frame), 0.0, None)


def test_scores_from_columns_equal_scikit_learn(fitted):
    kind, spec, model, rows = fitted
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    got = fast.scores_of(FeatureColumns(rows))
    assert fast._plan is not None  # the bins came from the columns, not the fallback
    assert np.array_equal(got, _sklearn(kind, model, prepare_features(rows, spec)))
    take = np.flatnonzero(np.arange(len(rows)) % 3 != 1)[::-1].copy()  # a subset, reordered
    with row_blocks.limit(2):
        again = fast.scores_of(FeatureColumns(rows), take)
    expected = _sklearn(kind, model, prepare_features(rows.take(take), spec))
    assert np.array_equal(again, expected)


def test_plan_bins_equal_the_boosters_bins(fitted):
    """Every bin of every column equals the booster's own binning of the transformed rows."""
    kind, spec, model, rows = fitted
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    Z = fast.transform(prepare_features(rows, spec))
    trees = fast._tree_scorer(Z)
    plan = BinPlan.build(fast.prep, trees._binner, spec)
    expected = trees._binner.transform(Z)
    assert (expected == trees._missing).any() and len(plan._categories) == 1
    assert np.array_equal(plan.bins(FeatureColumns(rows)).T, expected)


def test_unknown_transformers_fall_back(fitted, marts):
    """A part the plan does not reproduce (a scaler) gets no plan: scikit-learn's transform
    runs, with the same scores."""
    kind, spec, model, rows = fitted
    prep = model.named_steps["prep"]
    scaled = ColumnTransformer(
        [("num", StandardScaler(), list(spec.numeric + spec.boolean)), *prep.transformers[1:]],
        verbose_feature_names_out=False,
    )
    model = type(model)([("prep", scaled), ("model", clone(model.named_steps["model"]))])
    train = marts["ml_churn_training" if kind == "churn" else "ml_ltv_training"]
    model.fit(prepare_features(train, spec), train[model_kind(kind).label].astype(float))
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    got = fast.scores_of(FeatureColumns(rows))
    assert fast._plan is None and fast._trees is not None
    assert np.array_equal(got, _sklearn(kind, model, prepare_features(rows, spec)))


def test_other_category_encoders_by_distinct_combination(fitted, marts):
    """A categorical part that is not a one-hot encoder (ordinal codes, unseen ones -1) is
    applied once per distinct combination of its columns: the same bins and scores."""
    from sklearn.preprocessing import OrdinalEncoder

    kind, spec, model, rows = fitted
    prep = model.named_steps["prep"]
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    coded = ColumnTransformer(
        [*prep.transformers[:1], ("cat", ordinal, list(spec.categorical))],
        verbose_feature_names_out=False,
    )
    model = type(model)([("prep", coded), ("model", clone(model.named_steps["model"]))])
    train = marts["ml_churn_training" if kind == "churn" else "ml_ltv_training"]
    model.fit(prepare_features(train, spec), train[model_kind(kind).label].astype(float))
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    take = np.arange(0, len(rows), 2)
    got = fast.scores_of(FeatureColumns(rows), take)
    assert fast._plan is not None and fast._plan._categories[0][0] is not None
    assert np.array_equal(got, _sklearn(kind, model, prepare_features(rows.take(take), spec)))


@pytest.mark.parametrize(
    "users",
    [
        ["u10", "u9", "U9", "é", "", "u1 0", "u1", "zz"],  # code point order, not natural
        ["a\x00", "x", "a", "y", "b\x00\x00"],  # ids equal once numpy drops trailing NULs
        [12, 3, 7, 100],  # not strings
    ],
)
def test_day_user_order_equals_pandas(users):
    from ml.scoring import _day_user_order

    days = pd.to_datetime(["2026-01-02", "2026-01-01"] * len(users))[: len(users)].to_numpy()
    key = pd.DataFrame({"day": days, "user": pd.Series(users, dtype=object)})
    expected = key.sort_values(["day", "user"], kind="stable").index.to_numpy()
    assert np.array_equal(_day_user_order(key), expected)


def test_joined_codes_equal_joining_each_row():
    """reason strings joined once per distinct row of kept codes == each row's own join."""
    from ml.reasons import _joined

    rng = np.random.default_rng(5)
    pool = np.array(["a_high", "b_low", "no_c", "d_x", "e_high"], dtype=object)
    codes = pool[rng.integers(0, len(pool), size=(3000, 6))]
    codes[rng.random(codes.shape) < 0.3] = None
    kept = (rng.random(codes.shape) < 0.5) & (codes != None)  # noqa: E711 (elementwise)
    expected = [",".join(row[keep]) for row, keep in zip(codes, kept, strict=True)]
    assert _joined(codes, kept).tolist() == expected
    assert _joined(codes[:0], kept[:0]).tolist() == []


def test_frame_equals_prepare_features(fitted):
    """The reason codes' frame from the shared prepared columns == prepare_features."""
    kind, spec, model, rows = fitted
    columns = FeatureColumns(rows)
    columns.codes(spec.categorical[0])  # built by another champion first: same values
    expected = prepare_features(rows, spec)
    got = columns.frame(spec)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    got.iloc[:, 0] = -1.0  # a copy: the shared columns are not changed
    pd.testing.assert_frame_equal(columns.frame(spec), expected, check_exact=True)


def test_reason_walk_from_column_bins_equals_scikit_learn(fitted):
    """Reason codes walked from the plan's bins (with_columns) == re-predicting each changed
    row through scikit-learn, every bit."""
    from ml.reasons import feature_contributions

    kind, spec, model, rows = fitted
    rows = rows.iloc[:300]
    columns = FeatureColumns(rows)
    X = columns.frame(spec)
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    base = fast.with_columns(X, columns)
    assert fast._plan is not None and fast._last[2] is not None
    assert base.tolist() == _sklearn(kind, model, X).tolist()
    walked = feature_contributions(X, spec, fast, base=base)
    plain = feature_contributions(X, spec, lambda frame: _sklearn(kind, model, frame))
    assert (walked.to_numpy() != 0).sum() > len(X) and walked.equals(plain)
