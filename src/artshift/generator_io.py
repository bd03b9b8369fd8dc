"""What a generator takes and gives: declared once, asked for by training, evaluation, export,
inference, the CLI, the service and the model registry.

A network declares its input kind (``GeneratorInput``) as the class attribute ``takes``; the
exported ONNX file carries it in its metadata under :data:`METADATA_KEY`, so code that only
has the ONNX file (ONNX Runtime, no torch) asks the same declaration.
"""

from enum import StrEnum


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
# Model references that artshift.tracking resolves through MLflow rather than as file paths.
MODEL_URI_SCHEMES = ("models:/", "runs:/")
