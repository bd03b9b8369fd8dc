"""The one place that talks to MLflow.

One MLflow run per trained model: the train stage opens it and records its id in
``models/run.json``; evaluate and export log into that same run. Download and preprocess
log data-set facts to short runs of their own in the ``artshift-data`` experiment.
Every stage holds its run the same way, as a context manager (``with ... as run:``) that
ends the run FINISHED, or FAILED when the stage raises.
Tracking store: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` in the working directory
(the repo root when DVC runs a stage); artifacts go to ``mlartifacts/`` beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402  (telemetry must be off before the import)
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from PIL import Image  # noqa: E402

from artshift.errors import ArtShiftError  # noqa: E402
from artshift.files import write_json  # noqa: E402
from artshift.generator_io import MODEL_URI_SCHEMES, REGISTERED_NAMES, GeneratorInput  # noqa: E402

MODEL_EXPERIMENT = "artshift"
DATA_EXPERIMENT = "artshift-data"


def tracking_uri() -> str:
    """The tracking store: ``$MLFLOW_TRACKING_URI`` or the repo's SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _experiment_id(name: str) -> str:
    """Id of experiment ``name``, created with artifacts under ``mlartifacts/`` if new."""
    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:///"):
        store_dir = Path(tracking_uri().removeprefix("sqlite:///")).parent
        location = (store_dir / "mlartifacts").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def git_commit() -> str:
    """The current git commit (with ``-dirty`` if the tree has changes), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        # The lock file, metrics and plots are rewritten by the pipeline itself: not a code change.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock",
                                ":!metrics", ":!reports"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def flatten(params: Mapping, prefix: str = "") -> dict[str, object]:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": 1}``, the keys MLflow and DVC both use."""
    flat: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Run:
    """A handle on one MLflow run: log params, metrics, images and files into it.

    Used as a context manager by every stage: leaving the ``with`` block ends the run,
    ``FAILED`` if the block raised (Ctrl-C included), else ``FINISHED``.
    """

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri())

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if exc_type is None else "FAILED")

    def log_params(self, params: Mapping) -> None:
        """Log (nested) params under their dotted names.

        MLflow params are write-once; when a later stage re-runs with a changed value, the new
        value is kept as a ``param_changed.<key>`` tag instead of failing the stage.
        """
        logged = self.client.get_run(self.run_id).data.params
        new = {k: str(v) for k, v in flatten(params).items() if k not in logged}
        changed = {f"param_changed.{k}": str(v) for k, v in flatten(params).items()
                   if k in logged and logged[k] != str(v)}
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in new.items()],
                              tags=[RunTag(k, v) for k, v in changed.items()])

    def log_summary(self, summary: Mapping, prefix: str = "") -> None:
        """Log a stage's summary dict: numbers become metrics, everything else tags."""
        flat = flatten(summary, prefix)
        numbers = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.log_metrics(numbers)
        self.set_tags({k: v for k, v in flat.items() if k not in numbers})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log a dict of scalar metrics at ``step``."""
        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=entries)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set string tags on the run."""
        self.client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copy a file into the run's artifacts (under ``folder``)."""
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_image(self, image: Image.Image, name: str) -> None:
        """Store a PIL image as a PNG artifact called ``name``."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            image.save(path)
            self.log_artifact(path, str(Path(name).parent) if Path(name).parent != Path(".") else None)


def start_model_run(params: Mapping, run_name: str | None = None, tags: Mapping[str, str] | None = None) -> Run:
    """A new run for the model being trained: params logged, tagged with the git commit
    (use it as ``with start_model_run(...) as run``)."""
    client = MlflowClient(tracking_uri())
    commit = git_commit()
    all_tags = {"mlflow.source.git.commit": commit, "git_commit": commit, **(tags or {})}
    run = client.create_run(_experiment_id(MODEL_EXPERIMENT), run_name=run_name, tags=all_tags)
    handle = Run(run.info.run_id)
    handle.log_params(params)
    return handle


def save_run_ref(run: Run, path: str | Path) -> None:
    """Record the run id so later stages log into the same run."""
    write_json(path, {"run_id": run.run_id})


def open_run(ref_path: str | Path) -> Run:
    """The model run recorded in ``ref_path`` (``models/run.json``) by the train stage, to log
    into again (use it as ``with open_run(...) as run``)."""
    try:
        ref = json.loads(Path(ref_path).read_text())
        run_id = ref["run_id"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtShiftError(f"{ref_path}: no usable run id ({exc}); run the train stage first") from None
    return Run(run_id)


def data_run(stage: str) -> Run:
    """A new short run in the data experiment for ``stage`` (use it as ``with data_run(...) as run``)."""
    client = MlflowClient(tracking_uri())
    commit = git_commit()
    run = client.create_run(_experiment_id(DATA_EXPERIMENT), run_name=stage,
                            tags={"stage": stage, "git_commit": commit, "mlflow.source.git.commit": commit})
    return Run(run.info.run_id)


def log_onnx_model(run: Run, onnx_path: str | Path, input_example, takes: GeneratorInput) -> str:
    """Log the ONNX file with the ``mlflow.onnx`` flavour (signature + input example: one array,
    or a dict of arrays by input name for a model of several inputs) into the run, and register
    it under the name for generators that take ``takes`` (:data:`REGISTERED_NAMES`); returns the
    registered version."""
    import mlflow.onnx
    import onnx
    import onnxruntime as ort
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import Schema, TensorSpec

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = input_example if isinstance(input_example, dict) else {session.get_inputs()[0].name: input_example}
    output = session.run(None, feeds)[0]
    if isinstance(input_example, dict):  # MLflow infers no spec for a scalar (AdaIN's alpha): one spec per input
        inputs = Schema([TensorSpec(array.dtype, (-1, *array.shape[1:]) if array.ndim else (), name)
                         for name, array in input_example.items()])
        signature = ModelSignature(inputs, infer_signature(output).inputs)
    else:
        signature = infer_signature(input_example, output)
    mlflow.set_tracking_uri(tracking_uri())
    with mlflow.start_run(run_id=run.run_id):
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="onnx_model",
                                     signature=signature,
                                     input_example=input_example, registered_model_name=REGISTERED_NAMES[takes])
    return str(info.registered_model_version or "")


def resolve_model(model: str) -> Path:
    """A local ONNX path for ``model``: a file path as is, or an MLflow URI such as
    ``models:/artshift/latest`` downloaded from the tracking store."""
    if not model.startswith(MODEL_URI_SCHEMES):
        return Path(model)
    mlflow.set_tracking_uri(tracking_uri())
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    except Exception as exc:  # MLflow raises several types for unknown names, versions and runs
        raise ArtShiftError(f"{model}: cannot load from the MLflow store {tracking_uri()} "
                            f"({str(exc).splitlines()[0]})") from None
    found = [local] if local.is_file() else sorted(local.rglob("*.onnx"))
    if not found:
        raise ArtShiftError(f"{model}: no .onnx file in the logged model")
    return found[0]
