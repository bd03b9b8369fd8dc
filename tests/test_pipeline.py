"""End to end: `dvc repro` on a temporary copy of the repo with tiny params."""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "download": {"crops_per_photo": 2, "n_paintings": 16, "painting_size": 64},
    "preprocess": {"load_size": 32, "min_size": 32, "test_fraction": 0.3},
    "train": {"steps": 4, "ngf": 8, "ndf": 8, "n_blocks": 2, "nce_layers": [0, 4, 8], "num_patches": 16,
              "log_every": 2, "sample_every": 2, "checkpoint_every": 2, "n_samples": 2},
    "evaluate": {"batch_size": 4},
}

pytestmark = pytest.mark.slow


def _merge(base: dict, update: dict) -> dict:
    return {k: _merge(base[k], v) if isinstance(v, dict) else v for k, v in update.items()} | \
        {k: v for k, v in base.items() if k not in update}


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def copy_project(root: Path) -> dict:
    """Make ``root`` a committed git copy of the repo (tracked and new files) with the TINY params;
    returns the environment its commands run in (a local MLflow store in ``root``, no progress bars)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file() and name != "dvc.lock":  # a fresh lock: every stage must run
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(_merge(params, TINY), sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "ARTSHIFT_NO_PROGRESS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("ARTSHIFT_DEBUG", None)
    _run(["git", "init", "-q"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "copy"], root, env)
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git copy of the repo that has run `dvc repro` once."""
    root = tmp_path_factory.mktemp("repo")
    env = copy_project(root)
    repro = _run(["dvc", "repro"], root, env)
    return root, env, repro


def test_every_stage_writes_its_outputs(project):
    root, _, repro = project
    for stage in ("download", "preprocess", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" in repro.stdout
    output = repro.stdout + repro.stderr
    assert "wrote models/generator.onnx" in output and ".staging." not in output and "int8-source" not in output
    raw = json.loads((root / "data/raw/manifest.json").read_text())
    assert raw["paintings_synthetic"] is True
    assert len(list((root / "data/raw/paintings").iterdir())) == 16
    manifest = pd.read_csv(root / "data/processed/manifest.csv")
    assert set(manifest["split"]) == {"train", "test"} and set(manifest["domain"]) == {"photos", "paintings"}
    assert Image.open(root / "data/processed" / manifest["file"][0]).size == (32, 32)
    assert (root / "models/generator.pt").is_file() and (root / "models/generator.onnx").is_file()
    assert len(list((root / "models/checkpoints").glob("step_*.pt"))) == 2
    report = json.loads((root / "metrics/eval.json").read_text())
    assert report["feature_extractor"].startswith("inception-v3-random-init")
    assert report["model"]["fid"] > 0 and report["identity"]["fid"] > 0
    assert Image.open(root / "reports/eval_grid.png").size[0] > 64
    export = json.loads((root / "metrics/export.json").read_text())["variants"]
    assert set(export) == {"fp32", "fp16", "int8"} and export["fp32"]["max_abs_diff"] <= 1e-4
    expected = {"kid_mean_change_vs_fp32", "content_change_vs_fp32", "mean_abs_diff"}
    assert all(expected <= set(values) for variant, values in export.items() if variant != "fp32")
    assert "mean_abs_diff" in export["fp32"] and not [key for key in export["fp32"] if key.endswith("_vs_fp32")]
    for name in ("generator.fp16.onnx", "generator.int8.onnx"):
        assert (root / "models" / name).is_file()


def test_nothing_reruns_and_one_param_reruns_only_its_stage(project):
    root, env, _ = project
    again = _run(["dvc", "repro"], root, env)
    assert "Running stage" not in again.stdout
    original = (root / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["export"]["calibration_images"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status", "--json"], root, env)
    (root / "params.yaml").write_text(original)
    assert set(json.loads(status.stdout)) == {"export"}


def test_mlflow_run_holds_params_metrics_and_artifacts(project):
    root, env, _ = project
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    run_id = json.loads((root / "models/run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.data.params["train.steps"] == "4" and run.data.params["export.opset"] == "18"
    for metric in ("loss/d_total", "d_score/real", "grad_norm/g", "lr/g", "loss/g_total", "loss/nce",
                   "eval/model/fid_random_init", "eval/model/kid_mean_random_init",
                   "eval/identity/fid_random_init", "eval/reinhard/content_random_init", "export/fp32/max_abs_diff",
                   "export/int8/kid_mean_change_vs_fp32"):
        assert metric in run.data.metrics, metric
    assert not [name for name in run.data.metrics if name.startswith(("loss/lr", "loss/grad"))
                or name.startswith("export/fp32/") and name.endswith("_change_vs_fp32")]
    assert json.loads((root / "metrics/train.json").read_text())["mlflow_run_id"] == run_id  # for `dvc exp show`
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.artifact_uri.startswith((root / "mlartifacts").as_uri())
    assert [m.step for m in client.get_metric_history(run_id, "loss/d_total")] == [2, 4]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert run.data.tags["git_commit"] == head
    assert len(run.data.tags["dataset_sha256"]) == 64
    artifacts = {a.path for folder in ("eval", "onnx") for a in client.list_artifacts(run_id, folder)}
    assert {"eval/eval.json", "onnx/generator.onnx", "onnx/generator.int8.onnx"} <= artifacts
    images = [a.path for a in client.list_artifacts(run_id, "images")]  # log_image(key=..., step=...) series
    for key, steps in (("samples", (2, 4)), ("eval_grid", (4,))):  # images/<key>+step+<n>+timestamp+...png
        pattern = re.compile(rf"images/{key}[+%]step[+%](\d+)[+%].*(?<!compressed)\.png$")
        assert sorted(int(m[1]) for p in images if (m := pattern.match(p))) == list(steps), images
    versions = client.search_model_versions("name='artshift'")
    assert [v.run_id for v in versions] == [run_id]
    assert versions[0].tags["method"] == "cut" and "eval.kid_mean" in versions[0].tags and versions[0].description
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        info = mlflow.models.get_model_info("models:/artshift/latest")
    finally:
        mlflow.set_tracking_uri(previous)
    assert "onnx" in info.flavors and info.signature is not None
    data_runs = client.search_runs([client.get_experiment_by_name("artshift-data").experiment_id])
    assert {r.data.tags["stage"] for r in data_runs} == {"download", "preprocess"}


def test_cli_stylizes_test_photos_with_the_exported_model(project, tmp_path):
    root, env, _ = project
    photos = sorted((root / "data/raw/photos").iterdir())[:2]
    out = tmp_path / "out"
    result = subprocess.run(["artshift", "stylize", *map(str, photos), "--out", str(out),
                             "--model", "models:/artshift/latest"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run_id = json.loads((root / "models/run.json").read_text())["run_id"]
    assert f"running models:/artshift/latest (version 1, run {run_id}) on CPUExecutionProvider" in result.stderr
    for photo in photos:
        assert Image.open(out / photo.name).size == Image.open(photo).size


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(404)

    def log_message(self, *args):
        pass


def _failing_repro(root, env, stage: str, params: dict) -> subprocess.CompletedProcess:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(["dvc", "repro", stage], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stdout
    return result


KEPT = ["data/raw", "data/processed", "models/generator.pt", "models/run.json", "metrics/train.json",
        "reports/train_loss.csv", "metrics/eval.json", "reports/eval_grid.png", "models/generator.onnx"]


def _snapshot(root) -> dict[str, bytes]:
    files = [p for name in KEPT for p in ([root / name] if (root / name).is_file() else (root / name).rglob("*"))]
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files if p.is_file()}


def test_a_failed_stage_keeps_the_previous_outputs_and_checkout_restores_them(project):
    """Regression: DVC deleted a stage's outputs before running it, so `train.method: foo` left no
    generator, metrics or loss curve, a 404 left no data/raw, and models/run.json was lost for good."""
    root, env, _ = project
    _run(["git", "add", "-A"], root, env)  # commit the run, as its user would: metrics and the run id
    _run(["git", "commit", "-qm", "the tiny run"], root, env)
    before, params_text = _snapshot(root), (root / "params.yaml").read_text()
    params = yaml.safe_load(params_text)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        bad_method = _failing_repro(root, env, "train", _merge(params, {"train": {"method": "foo"}}))
        assert "error: train.method: input should be" in bad_method.stderr
        assert _snapshot(root) == before
        url = f"http://127.0.0.1:{server.server_address[1]}/missing.zip"
        not_found = _failing_repro(root, env, "download", _merge(params, {"download": {"source": "url", "url": url}}))
        assert f"error: download {url}: HTTP 404 Not Found" in not_found.stderr
        assert _snapshot(root) == before
    finally:
        server.shutdown()
        (root / "params.yaml").write_text(params_text)
    for name in ("models/run.json", "models/generator.pt"):
        (root / name).unlink()
    shutil.rmtree(root / "data/raw")
    _run(["dvc", "checkout"], root, env)
    _run(["git", "checkout", "--", "models/run.json"], root, env)  # the run id is tracked by git
    assert _snapshot(root) == before


def _head(root) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()


def _run_id(root) -> str:
    return json.loads((root / "models/run.json").read_text())["run_id"]


def test_dcgan_experiment_trains_scores_exports_and_samples(project, tmp_path):
    """Runs last: it commits the workspace as the baseline, runs a DCGAN experiment, then goes
    back to the baseline and forth to the experiment, and neither costs a stage."""
    root, env, _ = project
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "baseline", "--allow-empty"], root, env)  # maybe committed by an earlier test
    baseline, baseline_run = _head(root), _run_id(root)
    _run(["dvc", "exp", "run", "-n", "dcgan-tiny", "-S", "train.method=dcgan", "-S", "train.batch_size=2"], root, env)
    exp_run = _run_id(root)
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(exp_run).data.tags
    assert (tags["dvc.exp_name"], tags["dvc.baseline_rev"], tags["git_commit"]) == ("dcgan-tiny", baseline, baseline)
    report = json.loads((root / "metrics/eval.json").read_text())
    assert "content" not in report["model"] and report["model"]["fid"] > 0 and report["model"]["diversity"] > 0
    export = json.loads((root / "metrics/export.json").read_text())["variants"]
    assert export["fp32"]["max_abs_diff"] <= 1e-4 and "content" not in export["int8"]
    assert json.loads((root / "metrics/train.json").read_text())["method"] == "dcgan"
    out = tmp_path / "drawn"
    result = subprocess.run(["artshift", "sample", "--n", "3", "--seed", "0", "--out", str(out),
                             "--model", "models:/artshift-dcgan/latest"], cwd=root, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert [Image.open(p).size for p in sorted(out.iterdir())] == [(32, 32)] * 3
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], root, env).stdout)
    names = {exp["name"] for commit in shown for exp in (commit.get("experiments") or [])
             for exp in (exp.get("revs") or [exp])}
    assert "dcgan-tiny" in names, names
    assert exp_run in json.dumps(shown)  # metrics/train.json's mlflow_run_id, a column of `dvc exp show`

    round_trip = [(["git", "reset", "--hard", "-q"], baseline_run), (["dvc", "exp", "apply", "dcgan-tiny"], exp_run)]
    for command, run_id in round_trip:
        _run(command, root, env)
        _run(["dvc", "checkout"], root, env)
        assert json.loads(_run(["dvc", "status", "--json"], root, env).stdout) == {}, command  # nothing to rerun
        assert _run_id(root) == run_id

