"""Export the trained generator to self-contained ONNX files (fp32, fp16, int8) and check them.

A generator that takes photos gets dynamic batch, height and width, and any height and width of
at least :data:`~artshift.inference.MIN_SIDE` works: the graph reflect-pads the input to the
network's size multiple and crops the output back, so plain ONNX Runtime needs no ArtShift code.
One that takes noise gets ``z`` of shape (batch, z_dim) with a dynamic batch. One that takes a
photo and a style image (AdaIN) gets ``photo`` (any size, as above) and ``style``, each with its
own dynamic height and width, and a scalar ``alpha``. Every file says what it is in its
``doc_string`` and metadata: what its generator takes (:mod:`artshift.generator_io`), value
ranges, precision.
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
from torch import nn
from torch.nn import functional as F

from artshift.data.dataset import load_folder
from artshift.errors import ArtShiftError
from artshift.files import save_with
from artshift.generator_io import METADATA_KEY, ONNX_NAMES, GeneratorInput
from artshift.inference import MIN_SIDE, noise
from artshift.log import get_logger
from artshift.models.networks import SIZE_MULTIPLE
from artshift.models.reparam import reparameterise

VARIANTS = ("fp32", "fp16", "int8")  # fp32 is the reference the others are compared with
PARITY_SIZES = [(64, 96), (128, 128)]  # parity inputs i have batch i + 1 and these sizes
# ONNX ``model_version``: the version of the file's interface (inputs, outputs, metadata keys).
# 2: any height and width (padded inside the graph), dims named height/width, doc_string.
INTERFACE_VERSION = 2
RANGE = "[-1, 1] RGB NCHW (pixel / 127.5 - 1)"
DOC_STRINGS = {
    GeneratorInput.PHOTO: (
        "ArtShift generator ({method}): repaints photos in a learned abstract-painting style. "
        "Input 'image': float32 (batch, 3, height, width), RGB in [-1, 1] (pixel / 127.5 - 1); any height "
        "and width >= {min_side} (the graph reflect-pads to a multiple of {multiple} and crops back). "
        "Output 'stylized': the same shape, RGB in [-1, 1] (8-bit pixel = (x + 1) * 127.5). "
        "Metadata: run_id (MLflow run), method, params_hash, precision, train_image_size."),
    GeneratorInput.NOISE: (
        "ArtShift DCGAN generator ({method}): draws new abstract paintings from noise. "
        "Input 'z': float32 (batch, z_dim), z ~ N(0, I). Output 'painting': float32 (batch, 3, size, size), "
        "RGB in [-1, 1] (8-bit pixel = (x + 1) * 127.5). "
        "Metadata: run_id (MLflow run), method, params_hash, precision, train_image_size."),
    GeneratorInput.PHOTO_AND_STYLE: (
        "ArtShift AdaIN generator ({method}): repaints a photo in the style of any painting. "
        "Input 'photo': float32 (batch, 3, height, width), RGB in [-1, 1] (pixel / 127.5 - 1); any height "
        "and width >= {min_side} (the graph reflect-pads and crops back). Input 'style': float32 "
        "(batch, 3, style_height, style_width), RGB in [-1, 1], any size. Input 'alpha': float32 scalar in "
        "[0, 1] (0 keeps the photo's content features, 1 takes the style fully). Output 'stylized': the "
        "photo's shape, RGB in [-1, 1] (8-bit pixel = (x + 1) * 127.5). "
        "Metadata: run_id (MLflow run), method, params_hash, precision, train_image_size."),
}
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


class AnySize(nn.Module):
    """A generator of photos that takes any height and width: reflect-pads its photo on the bottom
    and right to a multiple of ``multiple`` and crops the output back (what
    :class:`~artshift.inference.Stylizer` does in NumPy, here inside the exported graph). Further
    arguments (AdaIN's style image and alpha) pass through unchanged."""

    def __init__(self, network: nn.Module, multiple: int):
        super().__init__()
        self.network, self.multiple = network, multiple

    def forward(self, x: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.network(padded, *conditions)[:, :, :height, :width]


def _export_spec(generator: torch.nn.Module) -> tuple[tuple[torch.Tensor, ...], tuple, dict[str, str]]:
    """Example arguments, their dynamic shapes and the input/output metadata of ``generator``'s graph
    (as :class:`AnySize` takes them: an AdaIN generator's style and alpha as one varargs entry)."""
    batch = torch.export.Dim("batch")
    if generator.takes is GeneratorInput.NOISE:
        return ((torch.zeros(2, generator.z_dim),), ({0: batch},),
                {"input": f"z ~ N(0, I), shape (N, {generator.z_dim})", "output_range": RANGE})
    height, width = torch.export.Dim("height", min=MIN_SIDE), torch.export.Dim("width", min=MIN_SIDE)
    photo = {0: batch, 2: height, 3: width}
    io_meta = {"size_multiple": "1", "min_side": str(MIN_SIDE), "input_range": RANGE, "output_range": RANGE}
    if generator.takes is GeneratorInput.PHOTO_AND_STYLE:
        multiple = generator.size_multiple
        style = {0: batch, 2: torch.export.Dim("style_height", min=multiple),
                 3: torch.export.Dim("style_width", min=multiple)}
        return ((torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 48, 80), torch.tensor(1.0)), (photo, (style, None)),
                io_meta | {"style": f"any height and width >= {multiple}",
                           "alpha": "scalar in [0, 1]: 0 photo, 1 full style"})
    return (torch.zeros(1, 3, 64, 64),), (photo,), io_meta


def _graph_network(generator: torch.nn.Module, int8_source: bool) -> torch.nn.Module:
    """What the graph computes: the generator's inference form, for photos wrapped in :class:`AnySize`."""
    network = reparameterise(generator, int8=int8_source)
    if generator.takes is GeneratorInput.NOISE:
        return network
    return AnySize(network, getattr(generator, "size_multiple", SIZE_MULTIPLE))


def _name_output_dims(model: onnx.ModelProto) -> None:
    """Give the output the input's dim names where the shapes agree: the exporter names them by
    the formula that computes them (``Min(height, 4*(...))``), equal to the input's by design."""
    source = model.graph.input[0].type.tensor_type.shape.dim
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) == len(source):
            for dim, named in zip(dims, source):
                if named.dim_param and dim.dim_param:
                    dim.dim_param = named.dim_param


def _strip_source_paths(model: onnx.ModelProto) -> None:
    """Drop the exporter's per-node Python stack traces: they name this checkout's absolute source
    paths, so the same model exported from another folder had other bytes (and leaked the path)."""
    for node in model.graph.node:
        kept = [entry for entry in node.metadata_props if entry.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)


def _describe(model: onnx.ModelProto, takes: GeneratorInput, metadata: dict[str, str]) -> None:
    """Set the model's doc string, interface version and metadata."""
    model.doc_string = DOC_STRINGS[takes].format(method=metadata.get("method", "?"), min_side=MIN_SIDE,
                                                 multiple=SIZE_MULTIPLE)
    model.model_version = INTERFACE_VERSION
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)


def export_generator(generator: torch.nn.Module, path: str | Path, opset: int,
                     metadata: dict[str, str] | None = None, int8_source: bool = False) -> None:
    """Write ``generator`` as ONNX to ``path`` atomically, check it, and embed ``metadata``.

    The graph is the generator's exact inference form (:func:`reparameterise`): same outputs,
    layers ONNX Runtime runs faster. ``int8_source`` is the form to quantise to int8.
    """
    generator = generator.eval()
    example, shapes, io_meta = _export_spec(generator)
    input_names, output_name = ONNX_NAMES[generator.takes]
    network = _graph_network(generator, int8_source)
    with _quiet_exporter():
        program = torch.onnx.export(network, example, dynamo=True, dynamic_shapes=shapes, opset_version=opset,
                                    input_names=list(input_names), output_names=[output_name], external_data=False)
    model = program.model_proto
    _strip_source_paths(model)
    _name_output_dims(model)
    _describe(model, generator.takes, {METADATA_KEY: generator.takes.value, **io_meta, "precision": "fp32",
                                       **(metadata or {})})
    onnx.checker.check_model(model, full_check=True)
    save_with(path, lambda tmp: onnx.save_model(model, str(tmp)))


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
    """Give ``target`` the doc string, interface version and metadata of ``source``, plus ``extra``."""
    meta = {p.key: p.value for p in source.metadata_props} | extra
    target.doc_string, target.model_version = source.doc_string, source.model_version
    del target.metadata_props[:]
    for key, value in meta.items():
        entry = target.metadata_props.add()
        entry.key, entry.value = key, value


def export_fp16(fp32_path: str | Path, path: str | Path) -> None:
    """An fp16 copy for GPUs: weights and arithmetic in half precision, fp32 inputs and outputs."""
    fp32 = onnx.load(str(fp32_path))
    half = convert_float_to_float16(fp32, keep_io_types=True)
    _drop_duplicate_nodes(half.graph)
    _copy_metadata(fp32, half, precision="fp16")
    save_with(path, lambda tmp: onnx.save_model(half, str(tmp)))


def _drop_duplicate_nodes(graph: onnx.GraphProto) -> None:
    """Remove nodes identical to an earlier one. The fp16 converter keeps a Resize's scales in
    fp32 by adding a Cast per use, so two Resizes sharing one scales constant (the generator's two
    bilinear upsamplings) get two identical Casts with one name: an invalid graph."""
    seen, unique = set(), []
    for node in graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            unique.append(node)
    del graph.node[:]
    graph.node.extend(unique)


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
        export_generator(generator, source, opset, metadata, int8_source=True)
        export_int8(source, path, calibration)


# Pad modes whose new values are copies of existing ones: padding commutes with (de)quantising.
COPYING_PAD_MODES = (b"reflect", b"edge", b"wrap")


def _attribute(node: onnx.NodeProto, name: str, default=None):
    """The value of ``node``'s attribute ``name``, or ``default`` when it has none."""
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _same_quantisation(initializers: dict[str, onnx.TensorProto], first: onnx.NodeProto,
                       second: onnx.NodeProto) -> bool:
    """Whether two (De)QuantizeLinear nodes have equal constant scales and zero points on one axis."""
    def params(node: onnx.NodeProto):
        names = node.input[1:3]
        if len(names) < 2 or any(name not in initializers for name in names):
            return None
        return _attribute(node, "axis", 1), [onnx.numpy_helper.to_array(initializers[n]).tolist() for n in names]

    first_params = params(first)
    return first_params is not None and first_params == params(second)


def _pad_quantized_tensors(graph: onnx.GraphProto) -> int:
    """Rewrite each DequantizeLinear → Pad (reflect/edge/wrap) → QuantizeLinear with one scale
    and zero point into a Pad of the 8-bit tensor; return how many were rewritten.

    The quantiser gives a copying Pad's output its input's parameters, so the round trip through
    float is exactly the identity, but ONNX Runtime keeps it: a dequantise, a float Pad of 4×
    the bytes and a quantise before every reflection-padded conv (the README's Benchmarks
    section has the time it costs). The outputs stay bit-identical.
    """
    initializers = {init.name: init for init in graph.initializer}
    graph_outputs = {output.name for output in graph.output}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    dropped: set[int] = set()
    rewritten = 0
    for pad in graph.node:
        if pad.op_type != "Pad" or _attribute(pad, "mode", b"constant") not in COPYING_PAD_MODES:
            continue
        dequantise, users = producers.get(pad.input[0]), consumers.get(pad.output[0], [])
        if (dequantise is None or dequantise.op_type != "DequantizeLinear" or len(users) != 1
                or users[0].op_type != "QuantizeLinear" or pad.output[0] in graph_outputs
                or not _same_quantisation(initializers, dequantise, users[0])):
            continue
        pad.input[0], pad.output[0] = dequantise.input[0], users[0].output[0]
        dropped.add(id(users[0]))
        rewritten += 1
        consumers[dequantise.output[0]].remove(pad)
        if not consumers[dequantise.output[0]] and dequantise.output[0] not in graph_outputs:
            dropped.add(id(dequantise))
    kept = [node for node in graph.node if id(node) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    return rewritten


def export_int8(fp32_path: str | Path, path: str | Path, calibration: np.ndarray | dict[str, np.ndarray]) -> None:
    """An int8 model for CPUs: static QDQ quantisation (u8 activations, per-channel s8 weights
    in 7 bits: ``reduce_range``).

    The 7-bit weights keep the model right on x86 CPUs without VNNI, whose u8×s8 kernels add
    pairs of products in 16 bits and saturate with full-range weights: on an AVX2 CPU the
    outputs of a test generator were off by 0.12 on average (of [-1, 1]) with 8-bit weights and
    0.05 with 7-bit ones. The file is made once and run on whatever CPU its user has.

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
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
        model = onnx.load(str(quantized))
    log.debug("int8: %d reflection pads run on the 8-bit tensors", _pad_quantized_tensors(model.graph))
    _copy_metadata(source, model, precision="int8")
    save_with(path, lambda tmp_path: onnx.save_model(model, str(tmp_path)))


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


def input_example(calibration: np.ndarray | dict[str, np.ndarray], takes: GeneratorInput,
                  side: int = 32) -> np.ndarray | dict[str, np.ndarray]:
    """A small input for the logged model's example (a few KB of JSON, not a megabyte), rounded to
    3 decimals: the first calibration sample with its images scaled down to ``side`` × ``side``
    (AdaIN: its photo and style image, and its scalar alpha), or the first noise vector."""
    if takes is GeneratorInput.NOISE:
        return calibration[:1].round(3)
    samples = calibration if isinstance(calibration, dict) else {"image": calibration}
    small = {name: array[0, ...] if array.ndim == 1
             else F.interpolate(torch.from_numpy(array[:1]), size=(side, side), mode="area").numpy()
             for name, array in samples.items()}
    small = {name: np.asarray(np.round(array, 3)) for name, array in small.items()}  # 0-d stays an array
    return small if isinstance(calibration, dict) else small["image"]


def export_variants(generator: torch.nn.Module, paths: dict[str, Path], opset: int,
                    calibration: np.ndarray | dict[str, np.ndarray],
                    metadata: dict[str, str], parity_atol: float, seed: int) -> dict[str, dict[str, float]]:
    """Write every variant of :data:`VARIANTS` to ``paths[variant]`` and check each against PyTorch.

    The log names each variant and its size, never ``paths`` (a stage's temporary stand-ins); the
    stage names the files once they are in place.

    Returns each variant's max/mean abs difference on :func:`parity_inputs`. An fp32 graph
    further than ``parity_atol`` from PyTorch is a broken export: :class:`ArtShiftError`.
    """
    export_generator(generator, paths["fp32"], opset, metadata)
    export_fp16(paths["fp32"], paths["fp16"])
    export_int8_generator(generator, paths["int8"], opset, calibration, metadata)
    inputs = parity_inputs(generator, seed)
    report = {variant: parity(generator, paths[variant], inputs) for variant in VARIANTS}
    for variant, diffs in report.items():
        log.info("%s (%.1f MB) vs PyTorch: max abs diff %.2e, mean %.2e", variant, paths[variant].stat().st_size / 1e6,
                 diffs["max_abs_diff"], diffs["mean_abs_diff"])
    if report["fp32"]["max_abs_diff"] > parity_atol:
        raise ArtShiftError(f"export: fp32 ONNX differs from PyTorch by {report['fp32']['max_abs_diff']:.2e} "
                            f"> export.parity_atol ({parity_atol:g})")
    return report


def quality_changes(scores: dict[str, dict[str, float]], reference: str = "fp32") -> dict[str, dict[str, float]]:
    """Each variant's scores and, for each score of the other variants, its change from the
    ``reference`` model's (``<metric>_change_vs_fp32``): what the lower precision costs. The
    reference gets none (they would all be 0)."""
    return {variant: values | ({} if variant == reference else
                               {f"{metric}_change_vs_{reference}": value - scores[reference][metric]
                                for metric, value in values.items()})
            for variant, values in scores.items()}
