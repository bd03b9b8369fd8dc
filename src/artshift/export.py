"""Export the trained generator to one self-contained ONNX file and check it.

Dynamic batch, height and width (height and width must stay multiples of
:data:`~artshift.models.networks.SIZE_MULTIPLE`; :mod:`artshift.inference` pads for that).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from artshift.files import save_with
from artshift.log import get_logger
from artshift.models.networks import SIZE_MULTIPLE

INPUT_NAME, OUTPUT_NAME = "image", "stylized"
log = get_logger("export")


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress and warnings to stdout; keep the stage's log readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        previous = logging.getLogger("torch.onnx").level
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger("torch.onnx").setLevel(previous)


def export_generator(generator: torch.nn.Module, path: str | Path, opset: int,
                     metadata: dict[str, str] | None = None) -> None:
    """Write ``generator`` as ONNX to ``path`` atomically, check it, and embed ``metadata``."""
    generator = generator.eval()
    example = torch.zeros(1, 3, 64, 64)
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
    shapes = {"x": {0: batch, 2: SIZE_MULTIPLE * height, 3: SIZE_MULTIPLE * width}}
    with _quiet_exporter():
        program = torch.onnx.export(generator, (example,), dynamo=True, dynamic_shapes=shapes, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], external_data=False)
    model = program.model_proto
    meta = {"size_multiple": str(SIZE_MULTIPLE), "input_range": "[-1, 1] RGB NCHW", **(metadata or {})}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model, full_check=True)
    save_with(path, lambda tmp: onnx.save_model(model, str(tmp)))
    log.info("wrote %s (opset %d, %.1f MB)", path, opset, Path(path).stat().st_size / 1e6)


def parity(network: torch.nn.Module, onnx_path: str | Path, sizes: list[tuple[int, int]], seed: int = 0) -> float:
    """Max abs difference between PyTorch and ONNX Runtime (CPU) outputs on random inputs.

    Input ``i`` has batch size ``i + 1`` and height × width ``sizes[i]``, so the dynamic batch
    and spatial axes are both exercised.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch, (height, width) in enumerate(sizes, start=1):
        x = torch.rand(batch, 3, height, width, generator=rng) * 2 - 1
        with torch.no_grad():
            expected = network.eval()(x).numpy()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
