"""What a daily run reads from the model registry, kept while the registry is unchanged.

A daily run only reads the registry: each champion's version, metadata and artifact folder
(scoring, the drift check) and every version with its run's metrics (the report). Through
MLflow that cost ~2 CPU s before any model was loaded: importing mlflow (~1 s) and opening
its SQLAlchemy tracking store (~0.8 s), a third of what a 1,000-user day spends outside its
steps. The registry changes only when a model is trained, promoted or rolled back, so those
answers are kept in a JSON file beside a local SQLite store (`<db>.registry-cache.json`),
keyed on a SHA-256 of the store's bytes: any write (a new version, a moved alias, a logged
run) gives another key, and the answer is read through MLflow again. A store being written
(its rollback journal exists), any other store (a tracking server, Postgres) and an
unreadable cache file are read through MLflow every time.

A champion saved with scikit-learn's flavor in the skops format (how segflow logs them) is
loaded here with skops from its local artifact folder, as `mlflow.sklearn.load_model` does
(the flavor's file and trusted types from the MLmodel file, MLflow's own deserialization
switch honoured); any other flavor, format or artifact store goes through MLflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

CACHE_SUFFIX = ".registry-cache.json"
# Bumped when what an entry holds changes: an older file is then read as empty.
FORMAT = 1
_SQLITE = "sqlite:///"
_CHUNK = 1 << 20


def store_file(tracking_uri: str) -> Path | None:
    """The SQLite file behind `tracking_uri` (sqlite:///relative or sqlite:////absolute, as
    SQLAlchemy reads it), or None for any other store."""
    if not tracking_uri.startswith(_SQLITE):
        return None
    path = tracking_uri[len(_SQLITE) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve()


def state_key(db: Path) -> str | None:
    """A hash of the store's committed state: its bytes and those of a write-ahead log, if
    any. None while a rollback journal exists (a write may be half done) or without a file."""
    if Path(f"{db}-journal").exists() or not db.is_file():
        return None
    digest = hashlib.sha256()
    for part in (db, Path(f"{db}-wal")):
        if part.exists():
            with open(part, "rb") as file:
                while chunk := file.read(_CHUNK):
                    digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def cache_file(db: Path) -> Path:
    return db.with_name(db.name + CACHE_SUFFIX)


def _read(path: Path, key: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"key": key, "format": FORMAT}
    if not isinstance(data, dict) or data.get("key") != key or data.get("format") != FORMAT:
        return {"key": key, "format": FORMAT}
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    """Written beside the store and renamed into place: a reader sees an old or a whole file.
    A store folder that cannot be written only costs the next run the MLflow read."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def cached(tracking_uri: str, section: str, item: str, read: Callable[[], Any]) -> Any:
    """`read()` (a JSON-able answer read through MLflow), or the answer kept for the store's
    current state. Either way the value is returned as JSON gives it back, so a first and a
    cached read are equal. Kept only when the store did not change while it was read."""
    db = store_file(tracking_uri)
    key = state_key(db) if db is not None else None
    if db is None or key is None:
        return _json_copy(read())
    path = cache_file(db)
    data = _read(path, key)
    answers = data.setdefault(section, {})
    if item in answers:
        return answers[item]
    value = _json_copy(read())
    if state_key(db) == key:
        data = _read(path, key)  # another process may have added answers meanwhile
        data.setdefault(section, {})[item] = value
        _write(path, data)
    return value


def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def local_path(uri: str | None) -> Path | None:
    """A local folder for a file:// URI or a plain path; None for remote artifact stores."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


def _deserialization_allowed() -> bool:
    """MLflow's switch (MLFLOW_ALLOW_PICKLE_DESERIALIZATION, default true) for loading a
    serialized model, skops included."""
    value = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower()
    return value in ("true", "1")


def load_skops(model_dir: str | None, flavors: dict[str, Any]) -> Any | None:
    """The scikit-learn model in `model_dir` when it is saved in the skops format on the local
    disk, loaded as mlflow.sklearn does; None when MLflow must load it."""
    conf = flavors.get("sklearn") or {}
    folder = local_path(model_dir)
    if conf.get("serialization_format") != "skops" or conf.get("code") or folder is None:
        return None
    path = folder / str(conf.get("pickled_model", ""))
    if not path.is_file() or not _deserialization_allowed():
        return None
    import skops.io

    return skops.io.load(path, trusted=conf.get("skops_trusted_types"))
