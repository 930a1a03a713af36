"""MLflow experiments open as model training (not the GenAI view) and carry descriptions, as
do the registered models, on a real MLflow store."""

from __future__ import annotations

from ml.registry import DESCRIPTION_TAG, EXPERIMENT_KIND_TAG, connect, ensure_experiment


def test_experiment_and_registered_model_are_described(tmp_path) -> None:
    client = connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    first = ensure_experiment(client, "segflow-churn", tmp_path / "artifacts")
    assert ensure_experiment(client, "segflow-churn", tmp_path / "artifacts") == first
    tags = client.get_experiment(first).tags
    assert tags[EXPERIMENT_KIND_TAG[0]] == "custom_model_development"
    assert "churn model" in tags[DESCRIPTION_TAG]
    assert "champion" in client.get_registered_model("segflow-churn").description
