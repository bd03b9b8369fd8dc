"""The MLflow model registry: what each exported model is, which one is the champion, clean-up.

Every export registers a new version of ``artshift`` (``artshift-dcgan`` for generators of
noise): the fp32 ONNX file logged with the ``mlflow.onnx`` flavour as one self-contained file,
with a signature of named tensors and dynamic sizes and a small input example. The version is
tagged with its run, DVC experiment, method, params hash and ``metrics/eval.json`` numbers, and
described in one line. ``models:/artshift/latest`` follows whatever ran last; the ``champion``
alias moves only by ``artshift promote VERSION``, which compares the version's evaluation with
the champion's and refuses a worse one unless forced. ``artshift registry prune`` deletes the
versions that neither git nor DVC can bring back any more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402  (telemetry must be off before the import)
import numpy as np  # noqa: E402
from mlflow.entities.model_registry import ModelVersion  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from artshift import tracking  # noqa: E402
from artshift.errors import ArtShiftError, one_line  # noqa: E402
from artshift.generator_io import REGISTERED_NAMES, GeneratorInput, ModelRef  # noqa: E402

CHAMPION = "champion"
PROMOTION_METRIC = "kid_mean"  # what promote compares; lower is better (KID is unbiased on small test sets)
EVAL_PREFIX = "eval."  # version tags holding the model row of metrics/eval.json
FEATURES_TAG = f"{EVAL_PREFIX}feature_extractor"
TRAIN_JSON = "metrics/train.json"  # git-tracked; names the MLflow run of the model it describes
_RUN_ID_IN_TRAIN_JSON = re.compile(r'"mlflow_run_id": "([0-9a-f]{32})"')
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


def client() -> MlflowClient:
    """A client of the project's tracking store, which holds its registry too."""
    return MlflowClient(tracking.tracking_uri(), registry_uri=tracking.tracking_uri())


def params_hash(params: Mapping) -> str:
    """First 16 hex digits of the sha256 of all params (sorted JSON): equal params, equal hash."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def version_tags(run_id: str, method: str, params_digest: str, eval_report: Mapping) -> dict[str, str]:
    """The tags of a new version: its run, DVC experiment, method, params hash, and the model row
    and feature extractor of its evaluation report."""
    tags = {"run_id": run_id, "method": method, "params_hash": params_digest, **tracking.dvc_experiment(),
            FEATURES_TAG: eval_report["feature_extractor"]}
    return tags | {f"{EVAL_PREFIX}{metric}": f"{value:.6g}" for metric, value in eval_report["model"].items()}


def describe(tags: Mapping[str, str]) -> str:
    """One line about a version, from its tags (the version's description in the registry)."""
    scores = ", ".join(f"{metric} {tags[EVAL_PREFIX + metric]}" for metric in (PROMOTION_METRIC, "fid", "content")
                       if EVAL_PREFIX + metric in tags)
    origin = (f"DVC experiment {tags['dvc.exp_name']} from {tags.get('dvc.baseline_rev', '?')[:7]}"
              if "dvc.exp_name" in tags else "not a DVC experiment")
    return (f"{tags.get('method', '?')} generator, params {tags.get('params_hash', '?')}; {scores or 'not evaluated'}; "
            f"{origin}; MLflow run {tags.get('run_id', '?')}")


def _signature(onnx_path: Path):
    """The logged model's signature, read from the graph: named float32 tensors, each dynamic
    dimension (batch, height, width) as -1."""
    import onnxruntime as ort
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def schema(arguments) -> Schema:
        return Schema([TensorSpec(np.dtype(np.float32), tuple(d if isinstance(d, int) else -1 for d in arg.shape),
                                  arg.name) for arg in arguments])

    return ModelSignature(inputs=schema(session.get_inputs()), outputs=schema(session.get_outputs()))


def log_and_register(run: tracking.Run, onnx_path: Path, input_example: np.ndarray, takes: GeneratorInput,
                     tags: Mapping[str, str]) -> str:
    """Log ``onnx_path`` into ``run`` with the ``mlflow.onnx`` flavour (one file, signature,
    ``input_example``) and register it as a new version with ``tags`` and a description;
    returns the version."""
    import mlflow.onnx
    import onnx

    mlflow.set_tracking_uri(tracking.tracking_uri())  # the flavour's logging reads the global store
    name = REGISTERED_NAMES[takes]
    with tracking.store_errors():
        info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="onnx_model", signature=_signature(onnx_path),
                                     input_example=input_example, save_as_external_data=False, run_id=run.run_id)
        version = mlflow.register_model(info.model_uri, name, tags=dict(tags))
        client().update_model_version(name, version.version, description=describe(tags))
    return str(version.version)


def _lookup(uri: str) -> ModelVersion | None:
    """The registered version a ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or
    ``models:/NAME/latest`` URI names; None for other URIs (runs, logged models)."""
    match = _REGISTRY_URI.match(uri)
    if not match:
        return None
    name, alias, version = match["name"], match["alias"], match["version"]
    try:
        if alias:
            return client().get_model_version_by_alias(name, alias)
        if version == "latest":
            return max(client().search_model_versions(f"name='{name}'"), key=lambda v: int(v.version), default=None)
        return client().get_model_version(name, version) if version.isdigit() else None
    except MlflowException as exc:
        hint = "; promote a version first: `artshift promote VERSION`" if alias == CHAMPION else ""
        raise ArtShiftError(f"{uri}: not found in the model registry of {tracking.tracking_uri()} "
                            f"({one_line(exc)}){hint}") from None


def resolve_model(uri: str) -> ModelRef:
    """Download the model an MLflow URI names (``models:/artshift@champion``,
    ``models:/artshift/3``, ``runs:/<id>/onnx_model``) and say which version and run it is."""
    version = _lookup(uri)
    source = f"models:/{version.name}/{version.version}" if version else uri
    store = tracking.tracking_uri()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=store, registry_uri=store))
    except Exception as exc:  # MLflow raises several types for unknown names, versions and runs
        raise ArtShiftError(f"{uri}: cannot load from the MLflow store {store} ({one_line(exc)})") from None
    found = [local] if local.is_file() else sorted(local.rglob("*.onnx"))
    if not found:
        raise ArtShiftError(f"{uri}: no .onnx file in the logged model")
    run_id = version.run_id if version else (uri.split("/")[1] if uri.startswith("runs:/") else None)
    return ModelRef(found[0], uri, str(version.version) if version else None, run_id)


def versions(name: str) -> list[ModelVersion]:
    """Every version of registered model ``name``, newest first, with its aliases (which a
    search leaves out)."""
    found = sorted(client().search_model_versions(f"name='{name}'"), key=lambda v: -int(v.version))
    return [client().get_model_version(name, str(version.version)) for version in found]


def summary(version: ModelVersion) -> str:
    """One line per version for ``artshift registry list``."""
    tags = version.tags
    return (f"{version.version:>4}  {','.join(version.aliases) or '-':<10} {tags.get('method', '?'):<9} "
            f"{PROMOTION_METRIC} {tags.get(EVAL_PREFIX + PROMOTION_METRIC, '-'):<10} "
            f"exp {tags.get('dvc.exp_name', '-'):<20} run {version.run_id}")


@dataclass(frozen=True)
class Promotion:
    """A version proposed as champion, and the current champion (None when there is none)."""

    name: str
    candidate: ModelVersion
    champion: ModelVersion | None

    def table(self) -> list[str]:
        """The evaluation numbers of both, one metric per line."""
        current = f"champion v{self.champion.version}" if self.champion else "no champion"
        keys = sorted({k for v in (self.candidate, self.champion) if v for k in v.tags if k.startswith(EVAL_PREFIX)})
        lines = [f"{'':<28}{current:>24}{f'v{self.candidate.version}':>24}"]
        for key in keys:
            mark = "  (compared; lower is better)" if key == EVAL_PREFIX + PROMOTION_METRIC else ""
            old = self.champion.tags.get(key, "-") if self.champion else "-"
            lines.append(f"{key:<28}{old[:23]:>24}{self.candidate.tags.get(key, '-')[:23]:>24}{mark}")
        return lines

    def refusal(self) -> str | None:
        """Why the candidate should not replace the champion, or None."""
        if self.champion is None or self.champion.version == self.candidate.version:
            return None
        key = EVAL_PREFIX + PROMOTION_METRIC
        if key not in self.candidate.tags:
            return f"version {self.candidate.version} has no {key} tag to compare"
        if key not in self.champion.tags:
            return None  # nothing to be worse than
        if self.candidate.tags.get(FEATURES_TAG) != self.champion.tags.get(FEATURES_TAG):
            return "the two were scored with different feature extractors: their numbers are not comparable"
        new, old = float(self.candidate.tags[key]), float(self.champion.tags[key])
        if new > old:
            return (f"version {self.candidate.version} is worse than the champion (version {self.champion.version}): "
                    f"{PROMOTION_METRIC} {new:g} > {old:g}")
        return None


def promotion(name: str, version: str) -> Promotion:
    """Version ``version`` of ``name`` beside the current champion."""
    candidate = _lookup(f"models:/{name}/{version}")
    if candidate is None:
        raise ArtShiftError(f"VERSION: must be a version number such as 3, got {version!r}")
    champion = None
    with contextlib.suppress(MlflowException):  # no champion yet
        champion = client().get_model_version_by_alias(name, CHAMPION)
    return Promotion(name, candidate, champion)


def set_champion(plan: Promotion) -> None:
    """Move the ``champion`` alias to the candidate."""
    client().set_registered_model_alias(plan.name, CHAMPION, plan.candidate.version)


def runs_in_git(root: Path) -> set[str]:
    """Run ids that ``metrics/train.json`` names in the workspace, in any commit or in any DVC
    experiment (whose commits live under ``refs/exps``, which ``git log --all`` reads)."""
    try:
        history = subprocess.run(["git", "log", "--all", "--format=", "-p", "--", TRAIN_JSON], cwd=root,
                                 capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ArtShiftError(f"registry prune: cannot read the git history of {root} ({one_line(exc)})") from None
    workspace = root / TRAIN_JSON
    return set(_RUN_ID_IN_TRAIN_JSON.findall(history + (workspace.read_text() if workspace.is_file() else "")))


def prunable(name: str, root: Path) -> list[ModelVersion]:
    """Versions of ``name`` that nothing can bring back: no alias, and a run that no commit or
    DVC experiment of the project at ``root`` names (after ``dvc exp remove``, say)."""
    kept = runs_in_git(root)
    return [version for version in versions(name) if not version.aliases and version.run_id not in kept]


def delete(version: ModelVersion) -> None:
    """Delete one registered version (its run and the run's artifacts stay)."""
    client().delete_model_version(version.name, version.version)
