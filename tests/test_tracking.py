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


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder that DVC runs a stage for (``DVC_ROOT``), from another working directory,
    with no ``MLFLOW_TRACKING_URI``: as in a ``--temp`` or queued DVC experiment."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.chdir(tmp_path)
    return root


def test_stages_log_into_the_projects_store_from_any_folder(project):
    from artshift import tracking

    assert tracking.tracking_uri() == f"sqlite:///{project / 'mlflow.db'}"
    with tracking.data_run("download") as run:
        run.log_artifact(__file__, "code")
    assert (project / "mlflow.db").is_file()
    assert list((project / "mlartifacts").rglob("test_tracking.py"))


def test_experiments_open_on_the_model_training_view(store):
    from artshift import tracking

    store.create_experiment(tracking.MODEL_EXPERIMENT)  # made before the type was set
    tracking.start_model_run({}).__exit__(None)
    tracking.data_run("download").__exit__(None)
    for name in (tracking.MODEL_EXPERIMENT, tracking.DATA_EXPERIMENT):
        assert store.get_experiment_by_name(name).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_moved_project_keeps_its_artifacts_beside_its_store(project, tmp_path, monkeypatch):
    import shutil

    from mlflow.tracking import MlflowClient

    from artshift import tracking

    with tracking.data_run("download") as old_run:
        old_run.log_artifact(__file__, "code")
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    monkeypatch.setenv("DVC_ROOT", str(moved))
    with tracking.data_run("preprocess") as new_run:
        new_run.log_artifact(__file__, "code")
    assert not project.exists()  # nothing written into the original folder
    client = MlflowClient(tracking.tracking_uri())
    for run in (old_run, new_run):
        assert client.get_run(run.run_id).info.artifact_uri.startswith((moved / "mlartifacts").as_uri())
        assert [a.path for a in client.list_artifacts(run.run_id, "code")] == ["code/test_tracking.py"]


def test_runs_record_their_dvc_experiment_and_clean_commit(store, tmp_path, monkeypatch):
    import subprocess

    from artshift import tracking

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "params.yaml").write_text("lr: 1\n")
    (repo / "code.py").write_text("x = 1\n")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run([*git, *command], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    monkeypatch.setenv("DVC_EXP_NAME", "hinge-ema")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", head)
    (repo / "params.yaml").write_text("lr: 2\n")  # what `dvc exp run -S lr=2` does
    with tracking.start_model_run({"lr": 2}, run_name="cut-1000") as run:
        pass
    logged = store.get_run(run.run_id)
    assert logged.info.run_name == "hinge-ema"
    assert logged.data.tags["dvc.exp_name"] == "hinge-ema" and logged.data.tags["dvc.baseline_rev"] == head
    assert logged.data.tags["git_commit"] == head  # params are logged; they do not make the code dirty
    (repo / "code.py").write_text("x = 2\n")
    assert tracking.git_commit() == f"{head}-dirty"
