"""The model registry: what a version records, the champion alias, pruning, loading by alias."""

import json
import os
import subprocess

import numpy as np
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

EVAL = {"feature_extractor": "inception-v3-random-init (seed 0, kaiming normal)",
        "model": {"fid": 12.5, "kid_mean": 0.0133, "kid_std": 0.002, "diversity": 0.6, "content": 0.4}}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty project (its own tracking store) as the working directory."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    from artshift import registry

    return registry.client()


@pytest.fixture
def registered(store, tiny_onnx, monkeypatch):
    """The tiny generator exported, logged and registered by a DVC experiment's export stage."""
    from artshift import registry, tracking
    from artshift.generator_io import GeneratorInput

    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    with tracking.start_model_run({"train": {"steps": 2}}) as run:
        tags = registry.version_tags(run.run_id, "cut", registry.params_hash({"train": {"steps": 2}}), EVAL)
        example = np.zeros((1, 3, 32, 32), dtype=np.float32)
        version = registry.log_and_register(run, tiny_onnx, example, GeneratorInput.PHOTO, tags)
    return version, run.run_id


def test_a_version_records_its_run_experiment_method_params_and_scores(store, registered):
    version, run_id = registered
    found = store.get_model_version("artshift", version)
    assert found.run_id == run_id and found.aliases == []
    assert {key: found.tags[key] for key in ("run_id", "method", "dvc.exp_name", "eval.kid_mean")} == {
        "run_id": run_id, "method": "cut", "dvc.exp_name": "tiny-exp", "eval.kid_mean": "0.0133"}
    assert len(found.tags["params_hash"]) == 16 and found.tags["dvc.baseline_rev"] == "a" * 40
    assert "kid_mean 0.0133" in found.description and run_id in found.description


def test_the_logged_model_is_one_file_that_pyfunc_runs_at_any_size(store, registered):
    import mlflow
    import onnx
    from onnx.external_data_helper import uses_external_data

    from artshift import tracking

    version, _ = registered
    uri = f"models:/artshift/{version}"
    mlflow.set_tracking_uri(tracking.tracking_uri())
    local = mlflow.artifacts.download_artifacts(uri)
    model_file = onnx.load(os.path.join(local, "model.onnx"), load_external_data=False)
    assert not any(uses_external_data(tensor) for tensor in model_file.graph.initializer)  # one self-contained file
    assert os.path.getsize(os.path.join(local, "input_example.json")) < 50_000
    signature = mlflow.models.get_model_info(uri).signature.to_dict()
    assert json.loads(signature["inputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3, -1, -1]}, "name": "image"}]
    model = mlflow.pyfunc.load_model(uri)
    for shape in ((1, 3, 32, 32), (2, 3, 40, 56)):
        out = model.predict(np.zeros(shape, dtype=np.float32))
        assert np.asarray(out["stylized"] if isinstance(out, dict) else out).shape == shape


def _cli(*args):
    from artshift.cli import main

    return main(list(args))


def _add_version(store, run_id: str, kid: str | None = None) -> str:
    """A version with just the tags promote and prune read (no model behind it)."""
    from artshift.registry import FEATURES_TAG

    if not store.search_registered_models("name='artshift'"):
        store.create_registered_model("artshift")
    tags = {FEATURES_TAG: EVAL["feature_extractor"]} | ({"eval.kid_mean": kid} if kid else {})
    return str(store.create_model_version("artshift", "file:///nowhere", run_id=run_id, tags=tags).version)


def _champion(store) -> str:
    return str(store.get_model_version_by_alias("artshift", "champion").version)


def test_champion_moves_only_by_promote_and_never_to_a_worse_version(store, capsys):
    first, worse, better = (_add_version(store, run, kid) for run, kid in (("a" * 32, "0.02"), ("b" * 32, "0.05"),
                                                                           ("c" * 32, "0.01")))
    assert _cli("promote", first) == 0
    assert _champion(store) == first
    assert _cli("promote", worse) == 2
    out, err = capsys.readouterr()
    assert "eval.kid_mean" in out and "0.05" in out and "0.02" in out  # the comparison is shown
    assert "is worse than the champion" in err and "--force" in err and err.count("\n") == 1
    assert _champion(store) == first
    assert _cli("promote", better) == 0 and _champion(store) == better
    assert _cli("promote", worse, "--force") == 0
    assert _champion(store) == worse
    assert _cli("promote", "99") == 2


def test_prune_deletes_only_versions_nothing_can_bring_back(store, tmp_path, capsys):
    committed, champion, removed = "a" * 32, "b" * 32, "c" * 32
    for run in (committed, champion, removed):
        _add_version(store, run, "0.01")
    store.set_registered_model_alias("artshift", "champion", "2")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train.json").write_text(json.dumps({"mlflow_run_id": committed}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for command in (["init", "-q"], ["add", "metrics"], ["commit", "-qm", "model"]):
        subprocess.run([*git, *command], cwd=tmp_path, check=True)
    (tmp_path / "metrics" / "train.json").write_text(json.dumps({"mlflow_run_id": "d" * 32}))  # a newer run

    assert _cli("registry", "prune", "--dry-run") == 0 and len(store.search_model_versions("name='artshift'")) == 3
    assert _cli("registry", "prune") == 0
    assert sorted(v.run_id for v in store.search_model_versions("name='artshift'")) == [committed, champion]
    assert "delete " in capsys.readouterr().out


def test_cli_and_service_say_which_version_and_run_they_loaded(store, registered, tmp_path, capsys):
    from fastapi.testclient import TestClient
    from PIL import Image

    from artshift.cli import resolve_model
    from artshift.serve import create_app

    version, run_id = registered
    assert _cli("stylize", str(tmp_path), "--out", str(tmp_path / "out"), "--model", "models:/artshift@champion") == 2
    assert "promote" in capsys.readouterr().err  # no champion yet
    assert _cli("promote", version) == 0
    Image.new("RGB", (20, 24)).save(tmp_path / "photo.png")
    assert _cli("stylize", str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                "--model", "models:/artshift@champion") == 0
    assert f"running models:/artshift@champion (version {version}, run {run_id}) on" in capsys.readouterr().err
    model = resolve_model("models:/artshift@champion")
    health = TestClient(create_app(model.path, model_ref=model)).get("/healthz").json()
    assert health["model"] == "models:/artshift@champion" and health["version"] == version
    assert health["run_id"] == run_id


def test_python_api_loads_a_registered_version(store, registered):
    from artshift import Stylizer

    version, run_id = registered
    stylizer = Stylizer(f"models:/artshift/{version}", providers=["CPUExecutionProvider"])
    assert stylizer.describe() == f"models:/artshift/{version} (version {version}, run {run_id})"
    assert stylizer.stylize(np.zeros((20, 24, 3), np.uint8)).shape == (20, 24, 3)
