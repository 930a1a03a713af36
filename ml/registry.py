"""MLflow plumbing: experiments with an explicit artifact folder, the model registry's
champion/challenger aliases, and loading a model together with the metadata stored with it.

Aliases replace the deprecated stages: `challenger` marks the newest version, `champion` the
one scoring uses. Rolling back is `set_champion(name, version)`. What a daily run reads (the
aliased versions, the version listing) goes through ml/registry_cache.py: while the store is
unchanged it is answered without importing mlflow.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from contracts.models import kind_of
from ml import registry_cache

if TYPE_CHECKING:  # mlflow is imported where it is used: a daily run reads the cache instead
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
META_KEY = "segflow"
META_ARTIFACT = "segflow_model_meta.json"
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE = "reference_sample.parquet"


class ModelNotFoundError(LookupError):
    """No registered version carries the requested alias."""


def connect(tracking_uri: str) -> MlflowClient:
    """Point the fluent API and a client at one store (the registry lives in the same store)."""
    if not tracking_uri:
        raise ValueError("MLflow tracking URI is empty: set MLFLOW_TRACKING_URI or pass one")
    import mlflow
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


# MLflow 3 opens an experiment in its GenAI view unless it is tagged as model training.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
DESCRIPTION_TAG = "mlflow.note.content"


def describe(name: str) -> str:
    """The text shown on the experiment and the registered model of `name` (segflow-<kind>)."""
    kind = kind_of(name)
    return (
        f"segflow's {kind} model. Each run is one training of the Dagster asset `{kind}_model`: "
        "boosted, linear and customer-base candidates on one time-based holdout, the best "
        "refitted on every labelled snapshot and registered here. The `champion` alias is the "
        "version that scores customers daily, `challenger` the latest."
    )


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """Create the experiment (artifacts under `artifact_root/<name>`, not the cwd) as a
    model-training experiment with a description, and the registered model of the same name
    with the same description; existing ones get the kind and description too."""
    from mlflow.exceptions import MlflowException

    existing = client.get_experiment_by_name(name)
    if existing is not None:
        experiment_id = existing.experiment_id
    else:
        location = None
        if artifact_root is not None:
            folder = Path(artifact_root).resolve() / name
            folder.mkdir(parents=True, exist_ok=True)
            location = folder.as_uri()
        experiment_id = client.create_experiment(name, artifact_location=location)
    client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND_TAG)
    client.set_experiment_tag(experiment_id, DESCRIPTION_TAG, describe(name))
    try:
        client.get_registered_model(name)
        client.update_registered_model(name, description=describe(name))
    except MlflowException:
        client.create_registered_model(name, description=describe(name))
    return experiment_id


def pip_requirements() -> list[str]:
    """Pinned requirements, given explicitly so MLflow skips its slow inference subprocess."""
    names = ("scikit-learn", "skops", "numpy", "pandas", "scipy")
    return [f"{name}=={package_version(name)}" for name in names]


def skops_trusted_types(model: Any) -> list[str]:
    """Types skops would refuse on load; only stock scientific-stack types are trusted."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [
        name
        for name in untrusted
        if not name.startswith(("sklearn.", "numpy.", "scipy.", "builtins."))
    ]
    if foreign:
        raise TypeError(f"model contains types outside the scientific stack: {foreign}")
    return list(untrusted)


def version_by_alias(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def set_champion(model_name: str, version: int | str, tracking_uri: str) -> ModelVersion:
    """Make `version` the champion (promotion or rollback); scoring picks it up on its next run.

    The move is recorded as a tag on the version so the registry shows who holds the alias why.
    """
    from mlflow.exceptions import MlflowException

    client = connect(tracking_uri)
    try:
        target = client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"registered model {model_name!r} has no version {version}"
        ) from exc
    previous = version_by_alias(client, model_name, CHAMPION)
    client.set_registered_model_alias(model_name, CHAMPION, str(target.version))
    client.set_model_version_tag(
        model_name,
        str(target.version),
        "segflow.champion_since_replacing",
        str(previous.version) if previous else "none",
    )
    return client.get_model_version(model_name, str(target.version))


@dataclass(frozen=True)
class LoadedModel:
    model_name: str
    version: str
    run_id: str
    model: Any
    meta: dict


# Loaded versions by (store, name, version, run): a registered version's artifacts never
# change, so one process (a daily run scores, checks drift and lists missing champions) parses
# and unpickles each version once; the alias is still looked up on every call (in the
# registry cache while the store is unchanged, else through MLflow).
_LOADED: dict[tuple[str, str, str, str], LoadedModel] = {}
_LOADED_MAX = 8


def import_model_loader() -> None:
    """Import the champions' loader (skops.io) now. Its import names every trusted type once,
    and for numpy's ufuncs (no `__module__`) skops searches every loaded module: imported
    after Dagster, dbt and GX (~5,500 modules) that is ~1.2 CPU s more than imported before
    them (~2,000). `segflow run` calls this before loading the definitions."""
    import skops.io  # noqa: F401


def forget_loaded() -> None:
    """Empty the per-process cache of loaded versions (benchmarks time a cold load)."""
    _LOADED.clear()


def alias_version(model_name: str, tracking_uri: str, alias: str = CHAMPION) -> ModelVersion:
    """The version holding `alias`; ModelNotFoundError (saying what to do) when none does."""
    found = version_by_alias(connect(tracking_uri), model_name, alias)
    if found is None:
        raise ModelNotFoundError(_no_alias(model_name, tracking_uri, alias))
    return found


def _no_alias(model_name: str, tracking_uri: str, alias: str) -> str:
    return (
        f"no version of registered model {model_name!r} has alias {alias!r} in "
        f"{_safe_uri(tracking_uri)}: train it first (segflow train / the *_model asset)"
    )


def aliased(model_name: str, tracking_uri: str, alias: str = CHAMPION) -> dict | None:
    """The version holding `alias` as the registry cache keeps it (ml/registry_cache.py):
    version, run id, the model's folder and flavors, segflow's metadata and the run's
    artifact folder; None when no version holds it."""

    def read() -> dict | None:
        import mlflow

        client = connect(tracking_uri)
        found = version_by_alias(client, model_name, alias)
        if found is None:
            return None
        info = mlflow.models.get_model_info(f"models:/{model_name}/{found.version}")
        return {
            "version": str(found.version),
            "run_id": str(found.run_id),
            "model_dir": client.get_model_version_download_uri(model_name, found.version),
            "flavors": info.flavors,
            "meta": (info.metadata or {}).get(META_KEY),
            "run_artifacts": client.get_run(found.run_id).info.artifact_uri,
        }

    return registry_cache.cached(tracking_uri, "aliased", f"{model_name}@{alias}", read)


def load_by_alias(model_name: str, tracking_uri: str, alias: str = CHAMPION) -> LoadedModel:
    """Load `models:/<name>@<alias>` with the metadata (feature spec, bands) logged with it.
    The returned model is shared with later loads of the same version: do not mutate it."""
    found = aliased(model_name, tracking_uri, alias)
    if found is None:
        raise ModelNotFoundError(_no_alias(model_name, tracking_uri, alias))
    key = (tracking_uri, model_name, found["version"], found["run_id"])
    if key not in _LOADED:
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = _load_version(model_name, tracking_uri, found)
    return _LOADED[key]


def _load_version(model_name: str, tracking_uri: str, found: dict) -> LoadedModel:
    if not found["meta"]:
        raise ModelNotFoundError(f"{model_name} v{found['version']}: no segflow metadata stored")
    model = registry_cache.load_skops(found["model_dir"], found["flavors"])
    if model is None:
        import mlflow

        connect(tracking_uri)
        uri = f"models:/{model_name}/{found['version']}"
        if "sklearn" in found["flavors"]:
            model = mlflow.sklearn.load_model(uri)
        else:  # the customer-base champion: a pyfunc wrapping a predict(_proba) estimator
            model = mlflow.pyfunc.load_model(uri).unwrap_python_model().estimator
    return LoadedModel(model_name, found["version"], found["run_id"], model, found["meta"])


def version_listing(model_name: str, tracking_uri: str) -> list[dict] | None:
    """Every version of `model_name` (newest first, as MLflow lists them) with its creation
    time (ms), run, aliases and the run's metrics, for the report; None for an unknown model."""

    def read() -> list[dict] | None:
        from mlflow.exceptions import MlflowException

        client = connect(tracking_uri)
        try:
            versions = client.search_model_versions(f"name='{model_name}'")
        except MlflowException:
            return None
        try:  # search_model_versions leaves aliases empty on some stores: the model's own list
            aliases = getattr(client.get_registered_model(model_name), "aliases", None) or {}
        except MlflowException:
            aliases = {}
        return [
            {
                "version": str(v.version),
                "created_ms": v.creation_timestamp or 0,
                "run_id": v.run_id,
                "aliases": [a for a, version in aliases.items() if str(version) == str(v.version)],
                "metrics": client.get_run(v.run_id).data.metrics if v.run_id else {},
            }
            for v in versions
        ]

    return registry_cache.cached(tracking_uri, "versions", model_name, read)


def log_json_artifact(payload: dict, artifact_name: str) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / artifact_name
        path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        mlflow.log_artifact(str(path))


def log_reference_sample(sample: pd.DataFrame) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / REFERENCE_FILE
        sample.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT_DIR)


def load_reference_sample(
    model_name: str, tracking_uri: str, alias: str = CHAMPION
) -> pd.DataFrame:
    """The training feature sample (+ `prediction`) logged with the aliased version, for drift."""
    found = aliased(model_name, tracking_uri, alias)
    if found is None:
        raise ModelNotFoundError(f"no version of {model_name!r} has alias {alias!r}")
    folder = registry_cache.local_path(found["run_artifacts"])
    local = folder / REFERENCE_ARTIFACT_DIR / REFERENCE_FILE if folder else None
    if local is not None and local.is_file():
        return pd.read_parquet(local)
    import mlflow

    connect(tracking_uri)
    with tempfile.TemporaryDirectory() as scratch:
        return pd.read_parquet(
            mlflow.artifacts.download_artifacts(
                run_id=found["run_id"],
                artifact_path=f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_FILE}",
                dst_path=scratch,
            )
        )


def _safe_uri(uri: str) -> str:
    """Tracking URI without credentials, for error messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
