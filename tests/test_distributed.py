"""Several training processes (DDP over gloo on the CPU) take the steps one process would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from artshift import checkpoint
from artshift.config import parse_params
from artshift.data.dataset import load_folder
from artshift.train import train
from conftest import write_processed

REPO = Path(__file__).resolve().parents[1]
STEPS, PER_PROCESS_BATCH = 3, 2
PARAMS = {"seed": 0, "preprocess": {"load_size": 32},
          "train": {"ngf": 8, "ndf": 8, "n_blocks": 2, "nce_layers": [0, 4, 8], "num_patches": 16, "steps": STEPS,
                    "device": "cpu", "log_every": 1, "sample_every": STEPS, "checkpoint_every": STEPS,
                    "n_samples": 2}}
# Both runs average the same per-image gradients, summed in another order, so they agree to float
# rounding. Compared on G's outputs: a conv bias that feeds an instance norm has a zero gradient
# up to rounding noise, which Adam's first steps scale to ±lr, but it cannot change the output.
ATOL = 1e-4


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """The train stage with train.gpus 2 on the CPU: it re-launches itself under torchrun."""
    root = tmp_path_factory.mktemp("ddp")
    write_processed(root / "data", per_folder=4)
    (root / "data" / "processed" / "manifest.csv").write_text("tiny\n")
    params = {**PARAMS, "train": {**PARAMS["train"], "gpus": 2, "batch_size": PER_PROCESS_BATCH}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "ARTSHIFT_NO_PROGRESS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "pipeline" / "train.py")], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, env, result


def test_two_processes_equal_one_with_the_double_batch(two_process_run, tmp_path):
    root, _, result = two_process_run
    assert "launching 2 training processes" in result.stderr
    single = parse_params({**PARAMS, "train": {**PARAMS["train"], "batch_size": 2 * PER_PROCESS_BATCH}})
    train(single, root / "data" / "processed", tmp_path / "checkpoints", tmp_path / "generator.pt")
    ddp, _ = checkpoint.load_generator(root / "models" / "generator.pt")
    reference, _ = checkpoint.load_generator(tmp_path / "generator.pt")
    assert ddp.state_dict().keys() == reference.state_dict().keys()  # the same checkpoint for any process count
    untrained = train(parse_params({**PARAMS, "train": {**PARAMS["train"], "steps": 1}}), root / "data" / "processed",
                      tmp_path / "one_step", tmp_path / "one_step.pt")
    assert untrained.steps == 1
    baseline, _ = checkpoint.load_generator(tmp_path / "one_step.pt")
    photos = load_folder(root / "data" / "processed" / "test" / "photos")
    with torch.no_grad():
        out_ddp, out_single, out_other = ddp(photos), reference(photos), baseline(photos)
    assert (out_ddp - out_single).abs().max() < ATOL
    assert (out_other - out_single).abs().max() > 100 * ATOL  # the comparison can tell runs apart


def test_only_rank_zero_logs_one_set_of_metrics(two_process_run):
    root, env, _ = two_process_run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("artshift").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(runs[0].info.run_id, "loss/d_total")
    assert [m.step for m in history] == list(range(1, STEPS + 1))
    assert len((root / "reports" / "train_loss.csv").read_text().splitlines()) == STEPS + 1
