"""The boosted champions' reason codes by the exact tree walk (ml.tree_reasons) equal
re-predicting each changed row through scikit-learn, bit for bit, and per user."""

from __future__ import annotations

import numpy as np
import pytest
from support.ml_marts import synthetic_marts

from contracts.models import model_kind
from ml.estimators import ISOTONIC_MIN_ROWS, calibrated_classifier, revenue_regressor
from ml.features import infer_feature_spec, prepare_features
from ml.pipeline_predict import PipelinePredict
from ml.reasons import feature_contributions, reason_strings
from ml.tree_reasons import TreeScorer

pytestmark = pytest.mark.usefixtures("one_blas_thread")


@pytest.fixture(scope="module")
def marts():
    return synthetic_marts(n_users=700, n_weeks=8, seed=5)


@pytest.fixture(scope="module", params=["churn-sigmoid", "churn-isotonic", "ltv"])
def boosted(request, marts):
    """A fitted boosted pipeline of each shape segflow trains: the calibrated classifier
    (sigmoid below ISOTONIC_MIN_ROWS training rows, isotonic above: the 100k champions) and
    the Poisson regressor. A few numeric columns are a tenth missing (NaN: the bin of
    missing values, sent left or right per node)."""
    kind = request.param.split("-")[0]
    train = marts["ml_churn_training" if kind == "churn" else "ml_ltv_training"]
    spec = infer_feature_spec(train)
    X = prepare_features(train, spec)
    rng = np.random.default_rng(7)
    for name in spec.numeric[:6]:
        X.loc[rng.random(len(X)) < 0.1, name] = np.nan
    y = train[model_kind(kind).label].astype(float)
    if request.param == "churn-isotonic":
        model = calibrated_classifier(spec, ISOTONIC_MIN_ROWS)
        assert model.named_steps["model"].method == "isotonic"
    elif kind == "churn":
        model = calibrated_classifier(spec, len(X))
        assert model.named_steps["model"].method == "sigmoid"
    else:
        model = revenue_regressor(spec, len(X))
    return kind, spec, X, model.fit(X, y)


def _sklearn(kind, model):
    if kind == "churn":
        return lambda frame: model.predict_proba(frame)[:, 1]
    return lambda frame: np.clip(model.predict(frame), 0.0, None)


def test_tree_walk_equals_re_predicting_every_changed_row(boosted):
    kind, spec, X, model = boosted
    batch = X.sample(500, random_state=0).reset_index(drop=True)
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    base = fast(batch)
    assert np.array_equal(base, _sklearn(kind, model)(batch))
    assert fast._trees is not None  # the walk is what runs (not the re-predict fallback)
    assert np.array_equal(fast.scores(batch), base)  # scores alone: leaf values, no leaves
    walked = feature_contributions(batch, spec, fast, base=base)
    plain = feature_contributions(batch, spec, _sklearn(kind, model))
    assert set(spec.categorical) & set(walked.columns)  # one-hot blocks are walked too
    assert (walked.to_numpy() != 0).sum() > len(batch)
    assert walked.equals(plain)  # every bit, every feature, every row


def test_kernel_equals_scikit_learn_bit_for_bit(boosted):
    """The compiled walk's predictions (ml.tree_kernels) are scikit-learn's predict_proba /
    predict, every bit, on rows with missing values, on one thread and on two."""
    from ml import row_blocks, tree_reasons

    kind, spec, X, model = boosted
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    Z = fast.transform(X)
    assert np.isnan(Z).any()
    trees = TreeScorer.for_model(model.named_steps["model"], Z)
    assert trees is not None
    expected = _sklearn(kind, model)(X)
    assert np.array_equal(trees.predict(Z), expected)
    with row_blocks.limit(2), pytest.MonkeyPatch.context() as patch:
        patch.setattr(tree_reasons, "BLOCK_ROWS", 101)
        assert np.array_equal(trees.predict(Z), expected)


def _both_kernels(trees, bins):
    """Raw scores and leaves of every row by the walk and by QuickScorer (ml.tree_kernels)."""
    from ml.tree_kernels import quick_raw_scores, raw_scores

    shape = (len(trees.offsets), len(bins))
    walk, quick = (np.empty(len(bins)), np.empty(shape, np.int32)), None
    raw_scores(bins, trees.offsets, trees.packed, trees.value, trees._baseline,
               trees._missing, *walk)  # fmt: skip
    if trees.quick is not None:
        quick = (np.empty(len(bins)), np.empty(shape, np.int32))
        quick_raw_scores(bins, *trees.quick, trees.value, trees._baseline, *quick)
    return walk, quick


def test_quick_scorer_equals_the_walk_leaf_for_leaf(boosted):
    """QuickScorer finds each row's leaf in each tree (missing bins sent either way) and sums
    the same floats as the walk."""
    kind, spec, X, model = boosted
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    Z = fast.transform(X)
    trees = TreeScorer.for_model(model.named_steps["model"], Z)
    assert trees.quick is not None and trees.quick[3].dtype == np.uint32
    walk, quick = _both_kernels(trees, trees._binner.transform(Z))
    assert np.array_equal(walk[1], quick[1]) and np.array_equal(walk[0], quick[0])


@pytest.mark.parametrize("leaves", [50, 90])
def test_quick_scorer_wide_trees(leaves):
    """Trees of 33-64 leaves take 64-bit masks; wider ones are walked: the same bits."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(1)
    Z = rng.normal(size=(3000, 4))
    Z[rng.random(Z.shape) < 0.1] = np.nan
    y = np.nan_to_num(Z[:, 0]) * 3 + np.sin(np.nan_to_num(Z[:, 1]) * 4) + rng.normal(size=3000)
    model = HistGradientBoostingRegressor(max_iter=8, max_leaf_nodes=leaves, min_samples_leaf=5)
    trees = TreeScorer.for_model(model.fit(Z, y), Z)
    walk, quick = _both_kernels(trees, trees._binner.transform(Z))
    if leaves > 64:
        assert trees.quick is None
    else:
        assert trees.quick[3].dtype == np.uint64
        assert np.array_equal(walk[1], quick[1]) and np.array_equal(walk[0], quick[0])
    assert np.array_equal(trees.predict(Z), np.clip(model.predict(Z), 0.0, None))


def test_tree_walk_codes_for_a_user_alone_equal_the_batch(boosted):
    kind, spec, X, model = boosted
    batch = X.sample(300, random_state=1).reset_index(drop=True)
    predict = PipelinePredict(model, spec, proba=kind == "churn")
    together = reason_strings(batch, spec, predict, base=predict(batch))
    for i in range(0, len(batch), 15):
        alone = PipelinePredict(model, spec, proba=kind == "churn")
        row = batch.iloc[[i]]
        assert reason_strings(row, spec, alone, base=alone(row)).iloc[0] == together.iloc[i]


def test_restarts_follow_the_reference_direction(boosted):
    """A leaf restarts exactly when its path takes the other side of a split on the changed
    column than the reference: checked against walking the changed row from the root."""
    from ml.tree_kernels import _leaf

    kind, spec, X, model = boosted
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    Z = fast.transform(X.head(60))
    trees = TreeScorer.for_model(model.named_steps["model"], Z)
    column = int(np.argmax(np.nanstd(Z, axis=0)))
    value = float(np.nanmedian(Z[:, column]))
    override = trees.override([column], [value])
    bins = trees.walked(Z).bins
    changed = Z.copy()
    changed[:, column] = value
    changed_bins = trees.walked(changed).bins
    none = np.full(bins.shape[1], -1, dtype=np.int16)
    over = none.copy()
    over[override.columns] = override.bins
    nodes = (trees.packed, trees._missing)
    moved = 0
    for row in range(len(Z)):
        for root in trees.offsets:
            leaf = _leaf(bins, row, root, none, *nodes)
            expected = _leaf(changed_bins, row, root, none, *nodes)
            start = override.restart[leaf]
            moved += start >= 0
            assert (_leaf(bins, row, start, over, *nodes) if start >= 0 else leaf) == expected
    assert 0 < moved < len(Z) * len(trees.offsets)


def test_other_estimators_decline_the_tree_walk():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(200, 3))
    y = np.arange(200) % 3  # three classes: not the binary shape the walk reproduces
    assert TreeScorer.for_model(HistGradientBoostingClassifier(max_iter=5).fit(Z, y), Z) is None
    assert TreeScorer.for_model(LogisticRegression().fit(Z, y % 2), Z) is None


def test_blocks_on_two_threads_equal_re_predicting(boosted, monkeypatch):
    """Small blocks on two threads (ml.row_blocks): the same bits as scikit-learn's own
    re-predict, whichever thread ran which block."""
    from ml import row_blocks, tree_reasons

    kind, spec, X, model = boosted
    monkeypatch.setattr(tree_reasons, "BLOCK_ROWS", 37)  # many blocks, a short last one
    batch = X.sample(400, random_state=3).reset_index(drop=True)
    fast = PipelinePredict(model, spec, proba=kind == "churn")
    with row_blocks.limit(2):
        base = fast(batch)
        walked = feature_contributions(batch, spec, fast, base=base)
    assert fast._trees is not None
    assert np.array_equal(base, _sklearn(kind, model)(batch))
    assert walked.equals(feature_contributions(batch, spec, _sklearn(kind, model)))


def test_each_block_covers_every_row_once_and_reraises():
    from ml import row_blocks

    seen = np.zeros(1000, dtype=int)

    def count(start, stop):
        seen[start:stop] += 1

    with row_blocks.limit(2):
        assert row_blocks.workers() == 2
        row_blocks.each_block(1000, 64, count)

        def fail(start, stop):
            if start >= 512:
                raise ValueError(f"block {start}")

        with pytest.raises(ValueError, match="block"):
            row_blocks.each_block(1000, 64, fail)
    assert row_blocks.workers() == 1  # outside any limit: one thread
    assert (seen == 1).all()
