"""The one MLflow run lifecycle every stage uses: ``with <run> as run`` ends FINISHED or FAILED."""

import os
import shutil

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A store with MLflow's schema, made once: its migrations take seconds per new database."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path, monkeypatch, empty_store):
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
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


def _damage(db):
    """A SQLite file whose pages past the header are garbage: 'database disk image is malformed'."""
    import sqlite3

    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE t (a)")
    connection.commit()
    connection.close()
    data = bytearray(db.read_bytes())
    data[100:] = b"Z" * (len(data) - 100)
    db.write_bytes(bytes(data))


def _locked(*args, **kwargs):
    """What MLflow's SQLite store raises when another process holds the lock for more than 5 s."""
    import sqlite3

    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    raise MlflowException(message=OperationalError("INSERT INTO metrics ...", {}, sqlite3.OperationalError(
        "database is locked")))


def test_damaged_store_is_one_line_naming_it(tmp_path, monkeypatch):
    from artshift import tracking
    from artshift.errors import TrackingError

    db = tmp_path / "mlflow.db"
    _damage(db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with pytest.raises(TrackingError) as excinfo:
        tracking.data_run("download")
    assert str(excinfo.value) == (f"tracking store sqlite:///{db}: database disk image is malformed (the file is "
                                  "damaged; restore it from a backup, or move it aside to start a new store)")


def test_locked_store_is_one_line_and_ending_the_run_never_fails(store, tmp_path, monkeypatch, caplog):
    from mlflow.tracking import MlflowClient

    from artshift import tracking
    from artshift.errors import TrackingError

    with tracking.data_run("download") as run:
        monkeypatch.setattr(MlflowClient, "log_batch", _locked)
        with pytest.raises(TrackingError) as excinfo:
            run.log_metrics({"n": 1})
        monkeypatch.setattr(MlflowClient, "set_terminated", _locked)
    assert str(excinfo.value) == (f"tracking store {tracking.tracking_uri()}: database is locked "
                                  "(another process held it for more than 5 s; run again when that one is done)")
    assert "could not mark MLflow run" in caplog.text  # a warning: the stage's outputs are already in place
    with pytest.raises(ValueError), tracking.data_run("download"):  # the stage's own error is not hidden
        raise ValueError("preprocess failed")


def test_open_run_checks_the_store_and_the_run(store, tmp_path):
    from artshift import tracking
    from artshift.errors import TrackingError

    (tmp_path / "run.json").write_text('{"run_id": "0123456789abcdef"}')
    with pytest.raises(TrackingError, match=r"^tracking store sqlite:///.*mlflow.db: .*0123456789abcdef"):
        tracking.open_run(tmp_path / "run.json")


def _raw_images(root, n: int = 4):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for domain in ("photos", "paintings"):
        (root / "data/raw" / domain).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / f"data/raw/{domain}/{i}.png")


def _run_stage(name: str):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "pipeline" / f"{name}.py"
    with pytest.raises(SystemExit) as excinfo:
        runpy.run_path(str(script), run_name="__main__")
    return excinfo.value.code


def test_store_locked_mid_stage_leaves_the_previous_output(store, tmp_path, monkeypatch, capsys):
    """The lock came after preprocess had built data/processed: it used to be swapped in anyway."""
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARTSHIFT_DEBUG", raising=False)
    (tmp_path / "params.yaml").write_text("preprocess:\n  load_size: 32\n  min_size: 32\n  test_fraction: 0.5\n")
    _raw_images(tmp_path)
    assert _run_stage("preprocess") == 0
    marker = tmp_path / "data/processed/previous.txt"
    marker.write_text("the previous output")
    capsys.readouterr()

    monkeypatch.setattr(MlflowClient, "log_artifact", _locked)
    assert _run_stage("preprocess") == 1
    assert marker.read_text() == "the previous output"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: tracking store sqlite:///{tmp_path / 'mlflow.db'}: database is locked (another process held it "
        "for more than 5 s; run again when that one is done)")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["processed", "raw"]


def test_damaged_store_fails_a_stage_before_it_works(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ARTSHIFT_DEBUG", raising=False)
    _damage(tmp_path / "mlflow.db")
    (tmp_path / "params.yaml").write_text("download:\n  crops_per_photo: 1\n  n_paintings: 4\n")
    assert _run_stage("download") == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: tracking store sqlite:///{tmp_path / 'mlflow.db'}: database disk image is malformed (the file is "
        "damaged; restore it from a backup, or move it aside to start a new store)"]
    assert not (tmp_path / "data").exists()


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


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server_down(tmp_path, monkeypatch):
    """A project folder whose MLFLOW_TRACKING_URI names a tracking server that is not running."""
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("ARTSHIFT_DEBUG", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")  # MLflow's default: minutes against a dead server
    return uri


def test_a_tracking_server_that_is_down_fails_the_stage_at_its_start(server_down, tmp_path, capsys):
    import time

    (tmp_path / "params.yaml").write_text("download:\n  crops_per_photo: 1\n  n_paintings: 4\n")
    began = time.monotonic()
    assert _run_stage("download") == 1
    assert time.monotonic() - began < 10
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: tracking server {server_down}: connection refused (start it, fix MLFLOW_TRACKING_URI, or set "
        "tracking.required: false to log to the local store)"]
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()


def test_tracking_not_required_logs_to_the_local_store_and_says_so(server_down, tmp_path, monkeypatch):
    import logging

    from mlflow.tracking import MlflowClient

    from artshift import tracking

    (tmp_path / "params.yaml").write_text("download:\n  crops_per_photo: 1\n  n_paintings: 4\n"
                                          "tracking:\n  required: false\n")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("artshift.tracking").addHandler(handler)
    try:
        assert _run_stage("download") == 0
    finally:
        logging.getLogger("artshift.tracking").removeHandler(handler)
    local = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [
        f"tracking server {server_down}: connection refused; tracking.required is false, so this stage logs to "
        f"the local store {local}"]
    client = MlflowClient(local)
    runs = client.search_runs([client.get_experiment_by_name(tracking.DATA_EXPERIMENT).experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("download", "FINISHED")]
    assert (tmp_path / "data/raw/photos").is_dir()


def test_a_server_that_does_not_answer_counts_as_down_after_the_timeout(monkeypatch):
    import socket
    import time

    from artshift import tracking

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        began = time.monotonic()
        assert tracking.server_problem(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5) == (
            "no answer within 0.5 s")
        assert time.monotonic() - began < 3


def test_a_local_store_is_not_probed(store, monkeypatch):
    from artshift import tracking

    monkeypatch.setattr(tracking, "server_problem", lambda uri: pytest.fail(f"probed {uri}"))
    tracking.check_store(required=True)


@pytest.mark.parametrize(("status", "problem"), [(502, "/health answered HTTP 502"), (401, None), (200, None)])
def test_a_server_answering_5xx_counts_as_down(monkeypatch, status, problem):
    import httpx

    from artshift import tracking

    asked = []
    monkeypatch.setattr(tracking.httpx, "get", lambda url, **kwargs: asked.append(url) or httpx.Response(status))
    assert tracking.server_problem("https://mlflow.example.org/") == problem  # 401: an authenticating proxy
    assert asked == ["https://mlflow.example.org/health"]
