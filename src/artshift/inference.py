"""Run the exported generator with ONNX Runtime: the code path people actually use.

:class:`Stylizer` (photo → painting) and :class:`Sampler` (noise → painting, DCGAN) each own
one ``InferenceSession``, try the CUDA provider first and fall back to the CPU, and report
which one really runs (``onnxruntime-gpu`` lists CUDA as available even on machines without a
GPU, so only the session's own ``get_providers()`` is trusted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from artshift.errors import ArtShiftError
from artshift.generator_io import METADATA_KEY, GeneratorInput
from artshift.images import rgb_pixels

PREFERRED_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
_ORT_FATAL_ONLY = 4
# Below this side the generator's innermost reflection padding has nothing to reflect.
MIN_SIDE = 16
# Runs of up to this many pixels (batch × height × width) keep ONNX Runtime's memory arena for
# the next image, so small images stay fast; after an image with larger runs it is given back.
KEEP_ARENA_PIXELS = 512 * 512


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


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def blend_weights(length: int, overlap: int) -> np.ndarray:
    """1-D weights rising linearly over ``overlap`` pixels at both ends, 1 in between (never 0)."""
    index = np.arange(length, dtype=np.float32)
    ramp = np.minimum(index + 1, length - index) / (overlap + 1)
    return np.minimum(ramp, 1.0)


def noise(count: int, z_dim: int, seed: int) -> np.ndarray:
    """``count`` latent vectors z ~ N(0, I) of length ``z_dim``, the same for the same seed
    (``artshift sample`` and the evaluate stage draw DCGAN samples with it)."""
    return np.random.default_rng(seed).standard_normal((count, z_dim)).astype(np.float32)


class OnnxGenerator:
    """One ``InferenceSession`` on the best available provider, run with IO binding on CUDA."""

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.is_file():
            raise ArtShiftError(f"{model_path}: model file not found (run `dvc repro` to build it)")
        _silence_provider_loader()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # The memory pattern plans one block per input shape on top of what the arena already
        # holds: a second run at the same shape doubled the peak (1.85 vs 0.95 GB, 1024 px tile).
        options.enable_mem_pattern = False
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=providers or PREFERRED_PROVIDERS)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ArtShiftError(f"{model_path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        self.path = model_path
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.takes = GeneratorInput(self.metadata.get(METADATA_KEY))
        except ValueError:
            raise ArtShiftError(f"{model_path}: not an ArtShift generator (its metadata has no valid "
                                f"{METADATA_KEY!r}; export it with `dvc repro export`)") from None
        self._check_input(model_path)
        self.input_shape = self.session.get_inputs()[0].shape
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.release_options = ort.RunOptions()  # shrinks the CPU arena when the run ends
        self.release_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def _check_input(self, model_path: Path) -> None:
        """Refuse a model whose one input is not the float32 tensor its kind takes (rank 4 with 3
        channels for photos, rank 2 for noise): ONNX Runtime would fail at the first image instead."""
        inputs = self.session.get_inputs()
        rank = 4 if self.takes is GeneratorInput.PHOTO else 2
        first = inputs[0] if inputs else None
        shape = list(first.shape) if first else []
        wrong_channels = rank == 4 and len(shape) == 4 and isinstance(shape[1], int) and shape[1] != 3
        if len(inputs) != 1 or first.type != "tensor(float)" or len(shape) != rank or wrong_channels:
            found = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs) or "no input"
            wanted = "one float tensor (N, 3, H, W)" if rank == 4 else "one float tensor (N, z_dim)"
            raise ArtShiftError(f"{model_path}: a {self.takes} generator must take {wanted}; this model takes {found}")

    @property
    def provider(self) -> str:
        """The execution provider that actually runs this session."""
        return self.session.get_providers()[0]

    def _run(self, inputs: np.ndarray, release: bool = False) -> np.ndarray:
        """One session run; with ``release`` the arena's free memory goes back to the OS after it."""
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        options = self.release_options if release else None
        if self.provider == "CUDAExecutionProvider":
            # IO binding: one upload, output allocated on the GPU, one download; no staging copies.
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.input_name, inputs)
            binding.bind_output(self.output_name, "cuda")
            self.session.run_with_iobinding(binding, options)
            return binding.copy_outputs_to_cpu()[0]
        (out,) = self.session.run([self.output_name], {self.input_name: inputs}, options)
        return out


class Sampler(OnnxGenerator):
    """A noise → painting ONNX generator (DCGAN): a seed in, new paintings out."""

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int = 0):
        super().__init__(model_path, providers, threads)
        if self.takes is not GeneratorInput.NOISE:
            raise ArtShiftError(f"{self.path}: this model repaints photos; use `artshift stylize` with it")
        self.z_dim = int(self.input_shape[1])

    def run_array(self, z: np.ndarray) -> np.ndarray:
        """(N, z_dim) latent vectors → (N, 3, S, S) paintings in [-1, 1]."""
        return self._run(z)

    def sample(self, count: int, seed: int, batch: int = 16) -> Iterator[Image.Image]:
        """``count`` paintings drawn from the noise of ``seed`` (same seed, same paintings),
        computed ``batch`` at a time so memory stays bounded."""
        z = noise(count, self.z_dim, seed)
        for start in range(0, count, batch):
            yield from (_to_pil(out) for out in self.run_array(z[start:start + batch]))


class Stylizer(OnnxGenerator):
    """An ONNX generator ready to repaint images: PIL in, PIL of the same size out.

    Images with a side above ``tile`` are processed in overlapping ``tile``-sized tiles whose
    overlaps are cross-faded, one row of tiles at a time: besides the 8-bit input and output,
    only one row of tiles is held in floating point, so memory stays bounded whatever the size.
    """

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int = 0,
                 tile: int = 1024, overlap: int = 64):
        super().__init__(model_path, providers, threads)
        if self.takes is not GeneratorInput.PHOTO:
            raise ArtShiftError(f"{self.path}: this model paints from noise (DCGAN); use `artshift sample` with it")
        if not 0 <= overlap < tile // 2:
            raise ArtShiftError(f"tile overlap must be in [0, tile/2), got overlap {overlap} for tile {tile}")
        self.tile, self.overlap = tile, overlap
        self.size_multiple = int(self.metadata.get("size_multiple", "4"))

    def run_array(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 in [-1, 1] → same shape; pads to the size multiple and crops back."""
        padded, height, width = _reflect_pad(batch.astype(np.float32, copy=False), self.size_multiple)
        return self._run(padded)[:, :, :height, :width]

    def release_memory(self) -> None:
        """Give what ONNX Runtime's arena holds beyond a tiny image back to the OS (one tiny run)."""
        tiny, _, _ = _reflect_pad(np.zeros((1, 3, MIN_SIDE, MIN_SIDE), dtype=np.float32), self.size_multiple)
        self._run(tiny, release=True)

    def tile_grid(self, width: int, height: int) -> tuple[list[int], list[int]]:
        """The top and left offsets of the tiles an image of this size is cut into."""
        return (tile_starts(height, min(self.tile, height), self.overlap),
                tile_starts(width, min(self.tile, width), self.overlap))

    def tile_count(self, width: int, height: int) -> int:
        """How many model runs an image of this size takes (1 when it fits in one tile)."""
        tops, lefts = self.tile_grid(width, height)
        return len(tops) * len(lefts)

    def run_pixels(self, pixels: np.ndarray, before_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Stylise (N, H, W, 3) uint8 ``pixels`` in place and return them; N > 1 only for images
        that fit one tile (a tiled image needs no second copy: each finished row of tiles
        overwrites input rows no later tile reads).

        ``before_tile(done, total)`` is called before each model run (to stop a run that
        takes too long, by raising).
        """
        count, height, width, _ = pixels.shape
        try:
            if self.tile_count(width, height) > 1:
                self._run_tiled(pixels[0], before_tile)
            else:
                if before_tile:
                    before_tile(0, 1)
                pixels[...] = _to_uint8(self.run_array(_to_input(pixels)).transpose(0, 2, 3, 1))
        finally:  # also when before_tile stopped the run
            if count * min(height, self.tile) * min(width, self.tile) > KEEP_ARENA_PIXELS:
                self.release_memory()
        return pixels

    def _run_tiled(self, pixels: np.ndarray, before_tile: Callable[[int, int], None] | None) -> None:
        """Stylise (H, W, 3) uint8 in place, one row of tiles at a time, overlaps cross-faded."""
        height, width, _ = pixels.shape
        tops, lefts = self.tile_grid(width, height)
        tile_h, tile_w = min(self.tile, height), min(self.tile, width)
        weight = np.outer(blend_weights(tile_h, self.overlap), blend_weights(tile_w, self.overlap))[..., None]
        band = np.zeros((tile_h, width, 4), dtype=np.float32)  # weighted RGB sums and the weight sum
        total = len(tops) * len(lefts)
        for row, top in enumerate(tops):
            for column, left in enumerate(lefts):
                done = row * len(lefts) + column
                if before_tile:
                    before_tile(done, total)
                tile = pixels[None, top:top + tile_h, left:left + tile_w]
                result = self.run_array(_to_input(tile))[0].transpose(1, 2, 0)
                band[:, left:left + tile_w, :3] += result * weight
                band[:, left:left + tile_w, 3:] += weight
            final = (tops[row + 1] if row + 1 < len(tops) else height) - top  # rows no later tile reads
            pixels[top:top + final] = _to_uint8(band[:final, :, :3] / band[:final, :, 3:])
            band[:tile_h - final] = band[final:]
            band[tile_h - final:] = 0.0

    def stylize(self, image: Image.Image, before_tile: Callable[[int, int], None] | None = None) -> Image.Image:
        """Repaint one image; the result has the input's width and height."""
        return Image.fromarray(self.run_pixels(rgb_pixels(image)[None], before_tile)[0])

    def stylize_batch(self, images: list[Image.Image]) -> list[Image.Image]:
        """Repaint images; same-sized ones that fit one tile go through the model as one batch."""
        if len({image.size for image in images}) == 1 and self.tile_count(*images[0].size) == 1:
            return [Image.fromarray(out) for out in self.run_pixels(np.stack([rgb_pixels(i) for i in images]))]
        return [self.stylize(image) for image in images]


RUNNERS = {GeneratorInput.PHOTO: Stylizer, GeneratorInput.NOISE: Sampler}


def open_generator(model_path: str | Path, providers: list[str] | None = None, threads: int = 0) -> Sampler | Stylizer:
    """The runner that fits what the model takes: a :class:`Stylizer` for photos, a
    :class:`Sampler` for noise."""
    probe = OnnxGenerator(model_path, providers, threads)
    return RUNNERS[probe.takes](model_path, providers, threads)


def _to_input(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32 in [-1, 1], the generator's input."""
    return pixels.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] (any layout) → uint8 pixels, clipped and rounded."""
    values = (values + 1.0) * 127.5
    np.clip(values, 0, 255, out=values)
    return np.rint(values, out=values).astype(np.uint8)


def _to_pil(array: np.ndarray) -> Image.Image:
    """(3, H, W) in [-1, 1] → 8-bit RGB PIL image."""
    return Image.fromarray(_to_uint8(array.transpose(1, 2, 0)))
