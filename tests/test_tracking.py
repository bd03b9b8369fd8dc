"""The one MLflow run lifecycle every stage uses: ``with <run> as run`` ends FINISHED or FAILED."""

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def test_every_kind_of_run_ends_finished_or_failed(store, tmp_path):
    from artshift import tracking

    with tracking.data_run("download") as run:
        run.log_metrics({"n": 1})
    assert store.get_run(run.run_id).info.status == "FINISHED"

    with pytest.raises(KeyboardInterrupt), tracking.start_model_run({"train": {"lr": 1}}) as model_run:
        tracking.save_run_ref(model_run, tmp_path / "run.json")
        raise KeyboardInterrupt
    assert store.get_run(model_run.run_id).info.status == "FAILED"

    with tracking.open_run(tmp_path / "run.json") as reopened:  # a later stage succeeds: FINISHED again
        assert reopened.run_id == model_run.run_id
    assert store.get_run(model_run.run_id).info.status == "FINISHED"

    with pytest.raises(ValueError), tracking.open_run(tmp_path / "run.json"):
        raise ValueError("evaluate failed")
    assert store.get_run(model_run.run_id).info.status == "FAILED"
