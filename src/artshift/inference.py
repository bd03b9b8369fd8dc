"""Run the exported generator with ONNX Runtime: the code path people actually use.

:class:`Stylizer` owns one ``InferenceSession``, tries the CUDA provider first and falls back
to the CPU, and reports which one really runs (``onnxruntime-gpu`` lists CUDA as available
even on machines without a GPU, so only the session's own ``get_providers()`` is trusted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from artshift.errors import ArtShiftError

PREFERRED_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
_ORT_FATAL_ONLY = 4
# Below this side the generator's innermost reflection padding has nothing to reflect.
MIN_SIDE = 16


def _silence_provider_loader() -> None:
    """Hide ORT's C++ errors about missing CUDA libraries: falling back to CPU is expected."""
    import onnxruntime as ort

    ort.set_default_logger_severity(_ORT_FATAL_ONLY)


def _reflect_pad(array: np.ndarray, multiple: int) -> tuple[np.ndarray, int, int]:
    """Pad (N, C, H, W) on the bottom/right by reflection up to a multiple of ``multiple``.

    Returns the padded array and the original height and width, to crop the output back.
    """
    height, width = array.shape[-2:]
    pad_h = max(height + -height % multiple, MIN_SIDE) - height
    pad_w = max(width + -width % multiple, MIN_SIDE) - width
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "symmetric"
        array = np.pad(array, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
    return array, height, width


class Stylizer:
    """An ONNX generator ready to repaint images: PIL in, PIL of the same size out."""

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.is_file():
            raise ArtShiftError(f"{model_path}: model file not found (run `dvc repro` to build it)")
        _silence_provider_loader()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers or PREFERRED_PROVIDERS)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ArtShiftError(f"{model_path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.size_multiple = int(meta.get("size_multiple", "4"))
        self.metadata = meta
        self.input_name = self.session.get_inputs()[0].name

    @property
    def provider(self) -> str:
        """The execution provider that actually runs this session."""
        return self.session.get_providers()[0]

    def run_array(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 in [-1, 1] → same shape; pads to the size multiple and crops back."""
        padded, height, width = _reflect_pad(batch.astype(np.float32, copy=False), self.size_multiple)
        (out,) = self.session.run(None, {self.input_name: padded})
        return out[:, :, :height, :width]

    def stylize(self, image: Image.Image) -> Image.Image:
        """Repaint one RGB image; the result has the input's width and height."""
        array = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
        out = self.run_array(array)[0]
        pixels = np.clip((out.transpose(1, 2, 0) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
        return Image.fromarray(pixels)
