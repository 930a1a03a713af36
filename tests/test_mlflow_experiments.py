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


def test_the_report_sees_the_champion_alias(tmp_path) -> None:
    from orchestration.defs.report import model_versions

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = connect(uri)
    experiment = ensure_experiment(client, "segflow-churn", tmp_path / "artifacts")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "roc_auc", 0.936)
    client.log_metric(run.info.run_id, "baseline_roc_auc", 0.942)
    version = client.create_model_version(
        "segflow-churn", (tmp_path / "m").as_uri(), run.info.run_id
    )
    client.set_registered_model_alias("segflow-churn", "champion", version.version)
    [info] = [v for v in model_versions(uri) if v.model == "segflow-churn"]
    assert info.aliases == "champion"
    assert (info.metrics, info.baseline) == ({"roc_auc": 0.936}, {"roc_auc": 0.942})
