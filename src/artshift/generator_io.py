"""What a generator takes and gives: declared once, asked for by training, evaluation, export,
inference, the CLI, the service and the model registry.

A network declares its input kind (``GeneratorInput``) as the class attribute ``takes``; the
exported ONNX file carries it in its metadata under :data:`METADATA_KEY`, so code that only
has the ONNX file (ONNX Runtime, no torch) asks the same declaration.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from os import PathLike
from pathlib import Path


class GeneratorInput(StrEnum):
    """The kind of input a generator maps to a painting."""

    PHOTO = "photo"  # (N, 3, H, W) RGB in [-1, 1] → repainted image of the same shape
    NOISE = "noise"  # (N, z_dim) latent vectors z ~ N(0, I) → (N, 3, S, S) new paintings
    # (N, 3, H, W) photo, (N, 3, H', W') style image of any size, both in [-1, 1], and a scalar
    # alpha in [0, 1] → the photo repainted in that style, (N, 3, H, W)
    PHOTO_AND_STYLE = "photo_and_style"


METADATA_KEY = "generator_input"
# ONNX input names (in the order of the generator's arguments) and output name of an exported
# generator, by what it takes.
ONNX_NAMES = {GeneratorInput.PHOTO: (("image",), "stylized"), GeneratorInput.NOISE: (("z",), "painting"),
              GeneratorInput.PHOTO_AND_STYLE: (("photo", "style", "alpha"), "stylized")}
# Model registry names: one per kind of input, so ``models:/artshift/...`` always repaints a
# photo alone.
REGISTERED_NAMES = {GeneratorInput.PHOTO: "artshift", GeneratorInput.NOISE: "artshift-dcgan",
                    GeneratorInput.PHOTO_AND_STYLE: "artshift-adain"}
# Model references that artshift.registry resolves through MLflow rather than as file paths.
# What the columns of a sample or evaluation grid show before the outputs, by what G takes.
INPUT_LABELS = {GeneratorInput.PHOTO: ("photo",), GeneratorInput.NOISE: (),
                GeneratorInput.PHOTO_AND_STYLE: ("photo", "style")}
MODEL_URI_SCHEMES = ("models:/", "runs:/")


@dataclass(frozen=True)
class ModelRef:
    """A model that the CLI, the service or the Python API loads: its local ONNX file (None for a
    model given as bytes), the name the user gave it (a path or an MLflow URI) and, when it came
    from the model registry, its version and run."""

    path: Path | None
    name: str
    version: str | None = None
    run_id: str | None = None

    def run(self, metadata: Mapping[str, str]) -> str | None:
        """The MLflow run that trained it: from the registry, else from the file's metadata."""
        return self.run_id or metadata.get("run_id")

    def describe(self, metadata: Mapping[str, str]) -> str:
        """One line naming it, e.g. ``models:/artshift@champion (version 3, run 0f9c…)``."""
        details = [f"version {self.version}"] if self.version else []
        if run := self.run(metadata):
            details.append(f"run {run}")
        return f"{self.name} ({', '.join(details)})" if details else self.name


def resolve_model(model: str | PathLike[str]) -> ModelRef:
    """The local ONNX file for a model reference: a path, or an MLflow URI such as
    ``models:/artshift@champion`` (downloaded by :func:`artshift.registry.resolve_model`, with its
    registry version and run; MLflow is imported only then)."""
    text = str(model)
    if text.startswith(MODEL_URI_SCHEMES):
        # Loaded by name: only a URI needs MLflow, and no pipeline stage resolves one.
        return importlib.import_module("artshift.registry").resolve_model(text)
    return ModelRef(Path(model), text)
