"""The registry cache (ml/registry_cache.py) on a real MLflow SQLite store: its answers equal
MLflow's, it follows every registry change (a moved alias, a new version, a logged metric),
and a run whose store is unchanged reads champions without importing mlflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ml import registry, registry_cache

NAME = "segflow-churn"
ROOT = Path(__file__).resolve().parents[1]


def _log_version(uri: str, artifacts: Path, seed: int, metric: float) -> str:
    """A boosted classifier logged as segflow does (sklearn flavor, skops, segflow metadata),
    registered under NAME; returns its version."""
    import mlflow

    client = registry.connect(uri)
    experiment = registry.ensure_experiment(client, NAME, artifacts)
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["a"] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=5 + seed, random_state=seed).fit(X, y)
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_metric("roc_auc", metric)
        registry.log_reference_sample(X.head(20).assign(prediction=0.5))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=NAME,
            metadata={registry.META_KEY: {"seed": seed, "bands": {"labels": ["low", "high"]}}},
            skops_trusted_types=registry.skops_trusted_types(model),
            pip_requirements=registry.pip_requirements(),
        )
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    first = _log_version(uri, folder / "artifacts", seed=1, metric=0.7)
    registry.set_champion(NAME, first, uri)
    return {"uri": uri, "folder": folder, "db": folder / "mlflow.db", "first": first}


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})


def test_cached_champion_equals_mlflows(store) -> None:
    import mlflow

    registry.forget_loaded()
    loaded = registry.load_by_alias(NAME, store["uri"])
    assert registry_cache.cache_file(store["db"]).is_file()
    registry.forget_loaded()
    cached = registry.load_by_alias(NAME, store["uri"])  # from the cache file this time
    registry.connect(store["uri"])
    version = registry.alias_version(NAME, store["uri"])
    direct = mlflow.sklearn.load_model(f"models:/{NAME}/{version.version}")
    info = mlflow.models.get_model_info(f"models:/{NAME}/{version.version}")
    for got in (loaded, cached):
        assert (got.version, got.run_id) == (str(version.version), version.run_id)
        assert got.meta == info.metadata[registry.META_KEY]
        np.testing.assert_array_equal(
            got.model.predict_proba(_frame()), direct.predict_proba(_frame())
        )
    reference = registry.load_reference_sample(NAME, store["uri"])
    assert list(reference.columns) == ["a", "b", "prediction"] and len(reference) == 20


def test_cache_follows_every_registry_change(store) -> None:
    """A stale answer would keep scoring with the old champion: a new version, a moved alias
    and a logged metric must each show up on the next read."""
    uri = store["uri"]
    assert registry.load_by_alias(NAME, uri).version == store["first"]
    second = _log_version(uri, store["folder"] / "artifacts", seed=2, metric=0.8)
    assert registry.load_by_alias(NAME, uri).version == store["first"]  # not promoted yet
    listed = {v["version"]: v for v in registry.version_listing(NAME, uri)}
    assert set(listed) == {store["first"], second}
    assert listed[store["first"]]["aliases"] == ["champion"]
    registry.set_champion(NAME, second, uri)
    try:
        champion = registry.load_by_alias(NAME, uri)
        assert (champion.version, champion.meta["seed"]) == (second, 2)
        listed = {v["version"]: v for v in registry.version_listing(NAME, uri)}
        assert listed[second]["aliases"] == ["champion"] and listed[store["first"]]["aliases"] == []
        registry.connect(uri).log_metric(listed[second]["run_id"], "pr_auc", 0.5)
        listed = {v["version"]: v for v in registry.version_listing(NAME, uri)}
        assert listed[second]["metrics"] == {"roc_auc": 0.8, "pr_auc": 0.5}
    finally:
        registry.set_champion(NAME, store["first"], uri)
    assert registry.load_by_alias(NAME, uri).version == store["first"]


def test_an_unchanged_store_is_read_without_mlflow(store) -> None:
    registry.load_by_alias(NAME, store["uri"])
    registry.version_listing(NAME, store["uri"])
    code = (
        "import sys\n"
        "from ml import registry\n"
        f"loaded = registry.load_by_alias({NAME!r}, {store['uri']!r})\n"
        f"assert registry.version_listing({NAME!r}, {store['uri']!r})\n"
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n"
        "print(loaded.version)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == store["first"]


def test_unsafe_states_are_read_through_mlflow(store, tmp_path) -> None:
    """A store mid-write (rollback journal), another kind of store or a broken cache file:
    read every time, nothing kept from a half-written state."""
    reads = []

    def read() -> dict:
        reads.append(1)
        return {"n": len(reads)}

    journal = Path(f"{store['db']}-journal")
    journal.write_bytes(b"")
    try:
        assert registry_cache.cached(store["uri"], "t", "x", read) == {"n": 1}
        assert registry_cache.cached(store["uri"], "t", "x", read) == {"n": 2}
    finally:
        journal.unlink()
    assert registry_cache.cached(store["uri"], "t", "x", read) == {"n": 3}
    assert registry_cache.cached(store["uri"], "t", "x", read) == {"n": 3}  # kept
    registry_cache.cache_file(store["db"]).write_text("{not json")
    assert registry_cache.cached(store["uri"], "t", "x", read) == {"n": 4}
    assert registry_cache.cached("http://mlflow.example:5000", "t", "x", read) == {"n": 5}
    assert registry_cache.store_file("sqlite:///:memory:") is None
    assert registry_cache.store_file(f"sqlite:///{tmp_path}/m.db?mode=ro") == tmp_path / "m.db"
