"""Training SIGKILLed at random steps: the rerun resumes from a whole checkpoint and ends with the
very weights of an uninterrupted run; a checkpoint of another method or image size is refused with
a warning naming what changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from artshift import checkpoint
from conftest import write_processed

from .conftest import trials

pytestmark = pytest.mark.faults
STEPS = 12
PARAMS = {"seed": 0, "preprocess": {"load_size": 32},
          "train": {"ngf": 8, "ndf": 8, "n_blocks": 2, "nce_layers": [0, 4, 8], "num_patches": 16, "log_every": 1,
                    "sample_every": 100, "checkpoint_every": 2, "keep_checkpoints": 2, "n_samples": 2, "steps": STEPS}}
SCRIPT = """
import json, sys
from pathlib import Path
from artshift.config import parse_params
from artshift.errors import run_main
from artshift.train import train

params, out, data = parse_params(json.loads(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
def run():
    result = train(params, data, out / "checkpoints", out / "generator.pt", loss_csv=out / "loss.csv")
    print("resumed_from", result.resumed_from)
sys.exit(run_main(run))
"""


def start(out, data, params=PARAMS):
    env = {**os.environ, "ARTSHIFT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(params), str(out), str(data)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(out, data, params=PARAMS):
    process = start(out, data, params)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-2000:]
    return int(stdout.split()[-1]), stderr


def kill_at_step(process, step: int, delay_s: float = 0.0) -> None:
    """SIGKILL ``process`` ``delay_s`` after it logs training step ``step`` (it may be saving a checkpoint)."""
    for line in process.stderr:
        if f" step {step}/" in line:
            break
    time.sleep(delay_s)
    process.kill()
    process.wait()


def weights(out):
    return checkpoint.load(out / "generator.pt", "generator")["state_dict"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_processed(tmp_path_factory.mktemp("data"), per_folder=3)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("straight")
    run(out, data)
    return weights(out), (out / "loss.csv").read_text()


def test_training_killed_at_random_steps_resumes_to_the_same_weights(tmp_path, data, reference, fault):
    """Training SIGKILLed at a random step, then run again"""
    rng = np.random.default_rng(0)
    for trial in range(trials(10)):
        out = tmp_path / f"t{trial}"
        step = int(rng.integers(1, STEPS))
        kill_at_step(start(out, data), step, delay_s=float(rng.uniform(0, 0.05)))
        saved = [checkpoint.load(path, "train")["step"] for path in checkpoint.list_steps(out / "checkpoints")]
        resumed_from, _ = run(out, data)
        same = all(torch.equal(weights(out)[k], reference[0][k]) for k in reference[0])
        curve = (out / "loss.csv").read_text() == reference[1]
        stray = [p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith("step_")]
        fault.trial(survived=resumed_from == max(saved, default=0) and not stray, lost=not (same and curve))
        assert same and curve and not stray, (step, saved, resumed_from, stray)
    assert fault.survived == fault.trials


@pytest.mark.parametrize("change", [{"method": "cyclegan"}, {"crop_size": 24}], ids=["method", "image-size"])
def test_a_checkpoint_of_another_method_or_image_size_is_refused(tmp_path, data, change):
    """Training: a checkpoint of another method or image size"""
    out = tmp_path / "m"
    kill_at_step(start(out, data), 5)
    assert checkpoint.list_steps(out / "checkpoints")
    params = {**PARAMS, "train": {**PARAMS["train"], **change, "steps": 2}}
    resumed_from, stderr = run(out, data, params)
    (key, value), = change.items()
    assert resumed_from == 0
    assert f"not resuming the checkpoints in {out / 'checkpoints'}: they belong to another run (" in stderr
    assert f"train.{key} " in stderr and f"→ {value!r}" in stderr
