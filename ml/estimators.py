"""scikit-learn pipelines for the three models and their baselines.

Only stock scikit-learn classes, so MLflow's default skops serialization stores and loads
them safely without custom-code trust.
"""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.features import FeatureSpec

RANDOM_STATE = 0
# Below this many training rows isotonic calibration overfits; sigmoid is the safer fit.
ISOTONIC_MIN_ROWS = 20_000
# Below this many rows a 10% early-stopping split holds too few rows (and perhaps a single
# class): fit a fixed, shorter boosting run instead.
EARLY_STOPPING_MIN_ROWS = 2_000


def _boosting_length(n_rows: int, max_iter: int) -> dict:
    if n_rows >= EARLY_STOPPING_MIN_ROWS:
        return {
            "max_iter": max_iter,
            "early_stopping": True,
            "validation_fraction": 0.1,
            "n_iter_no_change": 20,
        }
    return {"max_iter": 100, "early_stopping": False}


def _one_hot(n_rows: int) -> OneHotEncoder:
    return OneHotEncoder(
        handle_unknown="infrequent_if_exist",
        min_frequency=max(5, n_rows // 1000),
        sparse_output=False,
    )


def _tree_preprocessor(spec: FeatureSpec, n_rows: int) -> ColumnTransformer:
    """Numbers pass through (gradient boosting handles NaN natively); strings one-hot."""
    transformers: list = [("num", "passthrough", list(spec.numeric + spec.boolean))]
    if spec.categorical:
        transformers.append(("cat", _one_hot(n_rows), list(spec.categorical)))
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


def _linear_preprocessor(spec: FeatureSpec, n_rows: int) -> ColumnTransformer:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    transformers: list = [("num", numeric, list(spec.numeric + spec.boolean))]
    if spec.categorical:
        transformers.append(("cat", _one_hot(n_rows), list(spec.categorical)))
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


def calibrated_classifier(spec: FeatureSpec, n_rows: int) -> Pipeline:
    """Gradient boosting with cross-validated calibration so probabilities mean what they say.

    `ensemble=False`: the calibrator is fitted on 3-fold out-of-fold predictions and one
    booster is fitted on all rows, so scoring runs one booster, not three."""
    booster = HistGradientBoostingClassifier(
        learning_rate=0.06,
        max_leaf_nodes=31,
        min_samples_leaf=min(40, max(5, n_rows // 50)),
        l2_regularization=1.0,
        random_state=RANDOM_STATE,
        **_boosting_length(n_rows, 300),
    )
    method = "isotonic" if n_rows >= ISOTONIC_MIN_ROWS else "sigmoid"
    return Pipeline(
        [
            ("prep", _tree_preprocessor(spec, n_rows)),
            ("model", CalibratedClassifierCV(booster, method=method, cv=3, ensemble=False)),
        ]
    )


def logistic_baseline(spec: FeatureSpec, n_rows: int) -> Pipeline:
    return Pipeline(
        [
            ("prep", _linear_preprocessor(spec, n_rows)),
            ("model", LogisticRegression(max_iter=2000, C=1.0)),
        ]
    )


def linear_revenue(spec: FeatureSpec, n_rows: int) -> Pipeline:
    """The linear revenue candidate: a Poisson GLM (log link, non-negative mean)."""
    return Pipeline(
        [
            ("prep", _linear_preprocessor(spec, n_rows)),
            ("model", PoissonRegressor(alpha=1e-3, max_iter=1000)),
        ]
    )


def revenue_regressor(spec: FeatureSpec, n_rows: int) -> Pipeline:
    """Poisson-loss boosting: predicts a non-negative mean and copes with many zero rows."""
    booster = HistGradientBoostingRegressor(
        loss="poisson",
        learning_rate=0.06,
        max_leaf_nodes=31,
        min_samples_leaf=min(40, max(5, n_rows // 50)),
        l2_regularization=1.0,
        random_state=RANDOM_STATE,
        **_boosting_length(n_rows, 400),
    )
    return Pipeline([("prep", _tree_preprocessor(spec, n_rows)), ("model", booster)])
