"""Export the trained generator to self-contained ONNX files (fp32, fp16, int8) and check them.

A generator that takes photos gets dynamic batch, height and width (height and width must stay
multiples of :data:`~artshift.models.networks.SIZE_MULTIPLE`; :mod:`artshift.inference` pads
for that). One that takes noise gets ``z`` of shape (batch, z_dim) with a dynamic batch. One
that takes a photo and a style image (AdaIN) gets ``photo`` and ``style``, each with its own
dynamic height and width, and a scalar ``alpha``. Every file carries what its generator takes
in its metadata (:mod:`artshift.generator_io`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16

from artshift.data.dataset import load_folder
from artshift.errors import ArtShiftError
from artshift.files import save_with
from artshift.generator_io import METADATA_KEY, ONNX_NAMES, GeneratorInput
from artshift.inference import noise
from artshift.log import get_logger
from artshift.models.networks import SIZE_MULTIPLE
from artshift.models.reparam import reparameterise

VARIANTS = ("fp32", "fp16", "int8")  # fp32 is the reference the others are compared with
PARITY_SIZES = [(64, 96), (128, 128)]  # parity inputs i have batch i + 1 and these sizes
log = get_logger("export")


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter and the quantiser print progress and per-tensor warnings (to stdout and the
    root logger); keep the stage's log to its own one-line-per-step messages."""
    loggers = [logging.getLogger("torch.onnx"), logging.getLogger()]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _export_spec(generator: torch.nn.Module) -> tuple[tuple[torch.Tensor, ...], tuple, dict[str, str]]:
    """Example arguments, their dynamic shapes and the input metadata of ``generator``'s graph."""
    batch = torch.export.Dim("batch")
    if generator.takes is GeneratorInput.NOISE:
        return ((torch.zeros(2, generator.z_dim),), ({0: batch},),
                {"input": f"z ~ N(0, I), shape (N, {generator.z_dim})", "output_range": "[-1, 1] RGB NCHW"})
    height, width = torch.export.Dim("height"), torch.export.Dim("width")
    if generator.takes is GeneratorInput.PHOTO_AND_STYLE:
        multiple = generator.size_multiple
        style_sides = {2: torch.export.Dim("style_height", min=multiple),
                       3: torch.export.Dim("style_width", min=multiple)}
        return ((torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 48, 80), torch.tensor(1.0)),
                ({0: batch, 2: multiple * height, 3: multiple * width}, {0: batch, **style_sides}, None),
                {"size_multiple": str(multiple), "input_range": "[-1, 1] RGB NCHW",
                 "style": f"any height and width >= {multiple}", "alpha": "scalar in [0, 1]: 0 photo, 1 full style"})
    return ((torch.zeros(1, 3, 64, 64),), ({0: batch, 2: SIZE_MULTIPLE * height, 3: SIZE_MULTIPLE * width},),
            {"size_multiple": str(SIZE_MULTIPLE), "input_range": "[-1, 1] RGB NCHW"})


def export_generator(generator: torch.nn.Module, path: str | Path, opset: int,
                     metadata: dict[str, str] | None = None, subpixel_upsampling: bool = False) -> None:
    """Write ``generator`` as ONNX to ``path`` atomically, check it, and embed ``metadata``.

    The graph is the generator's exact inference form (:func:`reparameterise`): same outputs,
    layers ONNX Runtime runs faster. ``subpixel_upsampling`` is the form to quantise to int8.
    """
    generator = generator.eval()
    example, shapes, io_meta = _export_spec(generator)
    input_names, output_name = ONNX_NAMES[generator.takes]
    network = reparameterise(generator, subpixel_upsampling)
    with _quiet_exporter():
        program = torch.onnx.export(network, example, dynamo=True, dynamic_shapes=shapes, opset_version=opset,
                                    input_names=list(input_names), output_names=[output_name], external_data=False)
    model = program.model_proto
    meta = {METADATA_KEY: generator.takes.value, **io_meta, **(metadata or {})}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model, full_check=True)
    save_with(path, lambda tmp: onnx.save_model(model, str(tmp)))
    log.info("wrote %s (opset %d, %.1f MB)", path, opset, Path(path).stat().st_size / 1e6)


def parity_inputs(generator: torch.nn.Module, seed: int = 0) -> list[torch.Tensor | tuple[torch.Tensor, ...]]:
    """Random inputs that exercise every dynamic axis: batch ``i + 1`` at ``PARITY_SIZES[i]``
    for a generator of photos (with a style image of another size, and alpha 1 then 0.5, for one
    that takes a style image too); batches of 1, 2 and 5 latent vectors for one of noise."""
    rng = torch.Generator().manual_seed(seed)
    if generator.takes is GeneratorInput.NOISE:
        return [torch.randn(batch, generator.z_dim, generator=rng) for batch in (1, 2, 5)]
    photos = [torch.rand(batch, 3, height, width, generator=rng) * 2 - 1
              for batch, (height, width) in enumerate(PARITY_SIZES, start=1)]
    if generator.takes is GeneratorInput.PHOTO_AND_STYLE:
        return [(photo, torch.rand(len(photo), 3, width - 16, height + 24, generator=rng) * 2 - 1, torch.tensor(alpha))
                for photo, (height, width), alpha in zip(photos, PARITY_SIZES, (1.0, 0.5))]
    return photos


def parity(network: torch.nn.Module, onnx_path: str | Path,
           inputs: list[torch.Tensor | tuple[torch.Tensor, ...]]) -> dict[str, float]:
    """Max and mean abs difference between PyTorch and ONNX Runtime (CPU) on ``inputs`` (each a
    tensor, or a tuple of the generator's arguments)."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_names, output_name = ONNX_NAMES[network.takes]
    diffs = []
    for x in inputs:
        args = x if isinstance(x, tuple) else (x,)
        with torch.no_grad():
            expected = network.eval()(*args).numpy()
        (got,) = session.run([output_name], {name: arg.numpy() for name, arg in zip(input_names, args)})
        diffs.append(np.abs(got - expected).ravel())
    every = np.concatenate(diffs)
    return {"max_abs_diff": float(every.max()), "mean_abs_diff": float(every.mean())}


def _copy_metadata(source: onnx.ModelProto, target: onnx.ModelProto, **extra: str) -> None:
    meta = {p.key: p.value for p in source.metadata_props} | extra
    del target.metadata_props[:]
    for key, value in meta.items():
        entry = target.metadata_props.add()
        entry.key, entry.value = key, value


def _drop_repeated_nodes(model: onnx.ModelProto) -> None:
    """Keep one of several identical nodes (same name, op, inputs and outputs). ONNX Runtime's
    float16 converter inserts such copies: one Cast back to fp32 per consumer of a shared
    float-only input, e.g. the scales of AdaIN's three nearest-upsampling Resizes."""
    seen, kept = set(), []
    for node in model.graph.node:
        key = node.SerializeToString()
        if key not in seen:
            seen.add(key)
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def export_fp16(fp32_path: str | Path, path: str | Path) -> None:
    """An fp16 copy for GPUs: weights and arithmetic in half precision, fp32 inputs and outputs."""
    fp32 = onnx.load(str(fp32_path))
    half = convert_float_to_float16(fp32, keep_io_types=True)
    _drop_repeated_nodes(half)
    _copy_metadata(fp32, half, precision="fp16")
    save_with(path, lambda tmp: onnx.save_model(half, str(tmp)))
    log.info("wrote %s (%.1f MB)", path, Path(path).stat().st_size / 1e6)


class _Calibration(CalibrationDataReader):
    """Feeds calibration inputs to ONNX Runtime's static quantisation, one sample at a time.

    ``inputs`` maps each graph input to its samples stacked on the first axis; a scalar input
    (AdaIN's ``alpha``) gets one value per sample, a tensor input a batch of one.
    """

    def __init__(self, inputs: dict[str, np.ndarray], graph_inputs: list[onnx.ValueInfoProto]):
        self.inputs = {name: array.astype(np.float32) for name, array in inputs.items()}
        self.scalar = {i.name for i in graph_inputs if not i.type.tensor_type.shape.dim}
        self.samples = iter(range(len(next(iter(inputs.values())))))

    def get_next(self) -> dict | None:
        index = next(self.samples, None)
        if index is None:
            return None
        return {name: array[index, ...] if name in self.scalar else array[index:index + 1]
                for name, array in self.inputs.items()}


def export_int8_generator(generator: torch.nn.Module, path: str | Path, opset: int,
                          calibration: np.ndarray | dict[str, np.ndarray],
                          metadata: dict[str, str] | None = None) -> None:
    """The int8 model of ``generator``, quantised from its sub-pixel form, in which every
    convolution (transposed ones included) gets an int8 kernel (see :mod:`artshift.models.reparam`)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "int8-source.onnx"
        export_generator(generator, source, opset, metadata, subpixel_upsampling=True)
        export_int8(source, path, calibration)


def export_int8(fp32_path: str | Path, path: str | Path, calibration: np.ndarray | dict[str, np.ndarray]) -> None:
    """An int8 model for CPUs: static QDQ quantisation (u8 activations, per-channel s8 weights).

    Activation ranges come from running ``calibration`` inputs through the fp32 model, so they
    should be what the model will see: real photos (N, 3, H, W in [-1, 1]), for a DCGAN latent
    vectors (N, z_dim), or for a model of several inputs a dict of them by input name (AdaIN:
    photo/painting pairs and alphas).
    """
    source = onnx.load(str(fp32_path))
    inputs = calibration if isinstance(calibration, dict) else {source.graph.input[0].name: calibration}
    reader = _Calibration(inputs, list(source.graph.input))
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        with _quiet_exporter():
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = onnx.load(str(quantized))
    _copy_metadata(source, model, precision="int8")
    save_with(path, lambda tmp_path: onnx.save_model(model, str(tmp_path)))
    log.info("wrote %s (%.1f MB, calibrated on %d samples)", path, Path(path).stat().st_size / 1e6,
             len(next(iter(inputs.values()))))


def example_inputs(generator: torch.nn.Module, photos_dir: Path, count: int, seed: int, crop_size: int | None = None,
                   paintings_dir: Path | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """``count`` inputs like those the model will see, for int8 calibration and the MLflow input
    example: the first photos of ``photos_dir`` (centre-cropped to ``crop_size``), or seeded
    noise for a generator of noise. A generator that takes a style image gets a dict by ONNX
    input name: those photos, each paired with one of the first paintings of ``paintings_dir``
    (processed files are named by content hash: an arbitrary pick), and alphas from 1 to 0."""
    if generator.takes is GeneratorInput.NOISE:
        return noise(count, generator.z_dim, seed)
    photos = load_folder(photos_dir, limit=count, crop_size=crop_size).numpy()
    if generator.takes is not GeneratorInput.PHOTO_AND_STYLE:
        return photos
    paintings = load_folder(paintings_dir, limit=count, crop_size=crop_size).numpy()
    styles = paintings[np.arange(len(photos)) % len(paintings)]
    alphas = np.linspace(1.0, 0.0, len(photos), dtype=np.float32)
    return dict(zip(ONNX_NAMES[generator.takes][0], (photos, styles, alphas), strict=True))


def first_example(inputs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
    """The first sample of :func:`example_inputs` (a batch of one; a scalar stays a scalar):
    the MLflow input example."""
    if not isinstance(inputs, dict):
        return inputs[:1]
    return {name: array[0, ...] if array.ndim == 1 else array[:1] for name, array in inputs.items()}


def export_variants(generator: torch.nn.Module, paths: dict[str, Path], opset: int,
                    calibration: np.ndarray | dict[str, np.ndarray],
                    metadata: dict[str, str], parity_atol: float, seed: int) -> dict[str, dict[str, float]]:
    """Write every variant of :data:`VARIANTS` to ``paths[variant]`` and check each against PyTorch.

    Returns each variant's max/mean abs difference on :func:`parity_inputs`. An fp32 graph
    further than ``parity_atol`` from PyTorch is a broken export: :class:`ArtShiftError`.
    """
    export_generator(generator, paths["fp32"], opset, metadata)
    export_fp16(paths["fp32"], paths["fp16"])
    export_int8_generator(generator, paths["int8"], opset, calibration, metadata)
    inputs = parity_inputs(generator, seed)
    report = {variant: parity(generator, paths[variant], inputs) for variant in VARIANTS}
    for variant, diffs in report.items():
        log.info("%s vs PyTorch: max abs diff %.2e, mean %.2e", variant, diffs["max_abs_diff"], diffs["mean_abs_diff"])
    if report["fp32"]["max_abs_diff"] > parity_atol:
        raise ArtShiftError(f"export: fp32 ONNX differs from PyTorch by {report['fp32']['max_abs_diff']:.2e} "
                            f"> export.parity_atol ({parity_atol:g})")
    return report


def quality_changes(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each variant's scores and, for each score, its change from the fp32 model's
    (``<metric>_change_vs_fp32``): what the lower precision costs."""
    return {variant: values | {f"{metric}_change_vs_fp32": value - scores["fp32"][metric]
                               for metric, value in values.items()}
            for variant, values in scores.items()}
