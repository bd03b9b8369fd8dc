"""`dvc repro` SIGKILLed while each stage runs, then run again: it finishes, `dvc status` is clean,
and no output was ever half-written; and `artshift stylize` writing into a folder the pipeline
writes too, at the same time, leaves whole files only.

Each trial changes one param of the stage under test (so it and the stages after it must run),
starts `dvc repro` in a process group of its own, waits until the stage's process is up, and
SIGKILLs at a random moment of its run (drawn over the stage's duration in the first run): the
whole group (`dvc` and the stage, as a `kill -9` of the job or a power cut would) or the stage's
process alone (as the OOM killer would). Then every output of the pipeline is either the version
from before the trial or a whole new one (it decodes: JSON, CSV, PNG, checkpoint, ONNX; a folder
matches its manifest), the only files left over are the temporary ones named below, which the
rerun removes, and the rerun ends with `dvc status` clean.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import psutil
import pytest
import yaml
from PIL import Image

from artshift import checkpoint
from artshift.data.layout import PROCESSED_MANIFEST, RAW_MANIFEST
from test_pipeline import _run, copy_project

from .conftest import random_photos, trials

pytestmark = pytest.mark.faults

# Per stage: its outputs (dvc.yaml outs, metrics and plots) and a param that makes it run again
# with different results (two values, alternated by trial).
STAGES = {
    "download": (["data/raw"], ("download", "n_paintings", (17, 16))),
    "preprocess": (["data/processed"], ("preprocess", "test_fraction", (0.35, 0.3))),
    "train": (["models/generator.pt", "models/run.json", "metrics/train.json", "reports/train_loss.csv"],
              ("train", "lr", (0.0003, 0.0002))),
    "evaluate": (["metrics/eval.json", "reports/eval_grid.png"], ("evaluate", "kid_subsets", (50, 100))),
    "export": (["metrics/export.json", "models/generator.onnx", "models/generator.fp16.onnx",
                "models/generator.int8.onnx"], ("export", "calibration_images", (3, 16))),
}
OUTPUTS = [path for outs, _ in STAGES.values() for path in outs]
# Temporary names the project's atomic writers use (artshift.files, artshift.checkpoint): a file
# or folder being written, a folder being swapped out, a lock held while a folder is rebuilt.
TEMPORARY = re.compile(r"^\.(.+\.(tmp|old|lock)|step_.*\.tmp)$")
# Not the pipeline's files: git, DVC's own state and cache, the tracking store and its artifacts
# (MLflow stages a logged model under mlruns/ even with a database store).
NOT_OURS = (".git", ".dvc", "mlartifacts", "mlflow.db", "mlruns")
# State the stages keep besides their outputs, which a run may add to: checkpoints to resume
# from, cached Inception features, downloaded archives.
KEPT = ("models/checkpoints", "data/cache", "data/downloads")


def files_of(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but :data:`NOT_OURS` ("folder" for a folder), by relative path."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in NOT_OURS]
        for name in dirnames:
            found[str((Path(dirpath) / name).relative_to(root))] = "folder"
        for name in filenames:
            path = Path(dirpath) / name
            if str(path.relative_to(root)) not in NOT_OURS:
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def temporary(path: str) -> bool:
    """Whether ``path`` is, or is inside, a temporary file or folder of the project's writers."""
    return any(TEMPORARY.match(part) for part in Path(path).parts)


def under(path: str, output: str) -> bool:
    return path == output or path.startswith(output + "/")


def version(files: dict[str, str], output: str) -> dict[str, str]:
    """The files of one output (a file, or a folder's files) in a :func:`files_of` listing."""
    return {path: digest for path, digest in files.items() if under(path, output)}


def whole(root: Path, output: str) -> bool:
    """Whether ``output`` reads back completely: every file decodes, a data folder matches its manifest."""
    path = root / output
    if path.is_dir():
        if (path / RAW_MANIFEST).is_file():
            counts = json.loads((path / RAW_MANIFEST).read_text())["counts"]
            listed = {domain: len(list((path / domain).iterdir())) for domain in counts}
            return listed == counts and all(whole(root, str(p.relative_to(root))) for p in path.rglob("*.png"))
        manifest = pd.read_csv(path / PROCESSED_MANIFEST)
        on_disk = {str(p.relative_to(path)) for p in path.rglob("*.png")}
        return set(manifest["file"]) == on_disk and all(whole(root, f"{output}/{name}") for name in on_disk)
    if path.suffix == ".json":
        return isinstance(json.loads(path.read_text()), dict)
    if path.suffix == ".csv":
        table = pd.read_csv(path)
        return len(table) > 0 and not table.isna().any().any()
    if path.suffix == ".png":
        with Image.open(path) as image:
            image.load()
        return True
    if path.suffix == ".pt":
        return "state_dict" in checkpoint.load(path, "generator")
    # ONNX Runtime, not onnx.checker: the checker refuses the fp16 file's node order, which runs fine
    return bool(onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs())


def set_param(root: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def start_repro(root: Path, env: dict, stdout=subprocess.PIPE) -> subprocess.Popen:
    """`dvc repro` in a process group of its own (its stages run in it too), its output to ``stdout``."""
    return subprocess.Popen(["dvc", "repro"], cwd=root, env=env, stdout=stdout, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def stage_process(repro: subprocess.Popen, stage: str, timeout_s: float = 600) -> psutil.Process:
    """The process running ``pipeline/<stage>.py`` under ``repro``, once DVC has started it."""
    script = f"pipeline/{stage}.py"
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        for child in psutil.Process(repro.pid).children(recursive=True):
            try:
                command = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if script in command and Path(command[0]).name.startswith("python"):
                return child
        assert repro.poll() is None, f"dvc repro ended (exit {repro.returncode}) before {stage} ran"
        time.sleep(0.02)
    raise AssertionError(f"{stage} did not start in {timeout_s} s")


def kill(repro: subprocess.Popen, stage: psutil.Process, whole_group: bool) -> bool:
    """SIGKILL the repro's process group, or the stage's process alone; whether the stage was still running."""
    running = stage.is_running() and stage.status() != psutil.STATUS_ZOMBIE
    if whole_group:
        os.killpg(repro.pid, signal.SIGKILL)
    else:
        stage.kill()
    repro.communicate(timeout=600)
    return running


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny copy of the repo after one full `dvc repro`, and how long each stage's process ran in it."""
    root = tmp_path_factory.mktemp("repo")
    env = {**copy_project(root), "OMP_NUM_THREADS": "1"}
    repro, seconds = start_repro(root, env, subprocess.DEVNULL), {}
    for stage in STAGES:
        process = stage_process(repro, stage)
        began = time.monotonic()
        process.wait()
        seconds[stage] = time.monotonic() - began
    assert repro.wait() == 0
    return root, env, seconds


def kill_and_rerun(root: Path, env: dict, stage: str, delay_s: float, whole_group: bool) -> dict:
    """One trial: `dvc repro` SIGKILLed ``delay_s`` into ``stage``, then run again; what was seen."""
    before = files_of(root)
    repro = start_repro(root, env)
    process = stage_process(repro, stage)
    time.sleep(delay_s)
    in_stage = kill(repro, process, whole_group)
    after = files_of(root)
    kept = {path for out in OUTPUTS + list(KEPT) for path in version(after, out)}
    stray = [path for path in after if path not in before and path not in kept]
    rerun = _run(["dvc", "repro"], root, env)
    return {"in_stage": in_stage,
            "damaged": [out for out in OUTPUTS if version(after, out) != version(before, out) and not whole(root, out)],
            "missing": [out for out in OUTPUTS if version(before, out) and not version(after, out)],
            "temporary": [path for path in stray if temporary(path)],
            "unexpected": [path for path in stray if not temporary(path)],
            "left": [path for path in files_of(root) if temporary(path)],
            "status": json.loads(_run(["dvc", "status", "--json"], root, env).stdout),
            "dvc_lock_freed": "Auto removed it from the lock file" in rerun.stderr + rerun.stdout,
            "rerun_output": rerun.stdout + rerun.stderr}


@pytest.mark.parametrize("stage", list(STAGES))
def test_dvc_repro_killed_in_a_stage_reruns_to_a_clean_status(project, stage, fault):
    """dvc repro SIGKILLed while a stage runs, then run again"""
    root, env, seconds = project
    rng = np.random.default_rng(list(STAGES).index(stage))
    section, key, values = STAGES[stage][1]
    attempt = 0
    while fault.trials < trials(2) and attempt < 3 * trials(2):
        set_param(root, section, key, values[attempt % 2])
        seen = kill_and_rerun(root, env, stage, float(rng.uniform(0.05, 0.9)) * seconds[stage],
                              whole_group=fault.trials % 2 == 0)
        attempt += 1
        clean = seen["status"] == {} and not seen["left"] and not seen["unexpected"] \
            and "Traceback" not in seen["rerun_output"]
        print(stage, {key: value for key, value in seen.items() if key != "rerun_output"})
        if seen["in_stage"] or not clean:  # a kill after the stage had ended is tried again, unless it did harm
            fault.trial(survived=clean, lost=bool(seen["damaged"] or seen["missing"]))
        assert clean and not seen["damaged"] and not seen["missing"], (seen, seen["rerun_output"][-2000:])
    assert fault.trials == trials(2), f"the kill came after {stage} had ended in {attempt} tries"


def stylize_into(folder: Path, inputs: Path, model: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "artshift.cli", "stylize", str(inputs), "--out", str(folder),
                           "--model", str(model), "--threads", "1", "--force"], env=env, capture_output=True,
                          text=True, timeout=300)


def test_stylize_into_a_folder_dvc_repro_writes_at_the_same_time(project, tmp_path, fault):
    """artshift stylize into reports/ while dvc repro writes there (train, evaluate, export)"""
    root, env, _ = project
    inputs = random_photos(tmp_path / "photos", 4, 120, 160, seed=7, prefix="photo")
    for trial in range(trials(2)):
        set_param(root, "train", "lr", (0.0004, 0.0002)[trial % 2])  # train, evaluate and export run again
        log = tmp_path / f"repro{trial}.log"
        with open(log, "w") as handle:
            repro, runs = start_repro(root, env, handle), []
            while repro.poll() is None:  # back to back, reading the model export replaces, writing beside the grid
                runs.append(stylize_into(root / "reports", inputs, root / "models/generator.onnx", env))
        output = log.read_text()
        images = sorted((root / "reports").glob("*.png"))
        sizes = {path.name: Image.open(path).size for path in images if whole(root, f"reports/{path.name}")}
        intact = (sizes == {"eval_grid.png": sizes.get("eval_grid.png"), **{f"photo{i}.png": (160, 120)
                                                                            for i in range(4)}}
                  and all(whole(root, out) for out in OUTPUTS))
        left = [path.name for path in (root / "reports").iterdir() if temporary(path.name)]
        status = json.loads(_run(["dvc", "status", "--json"], root, env).stdout)
        ok = repro.returncode == 0 and all(run.returncode == 0 for run in runs) and status == {} and not left
        fault.trial(survived=ok and len(runs) > 1, lost=not intact)
        assert intact and ok and len(runs) > 1, (trial, sizes, left, status, output[-2000:],
                                                 [run.stderr[-500:] for run in runs if run.returncode])
