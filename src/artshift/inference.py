"""Run the exported generator with ONNX Runtime: the code path people actually use, and the
public Python API (``from artshift import Stylizer, Sampler``).

:class:`Stylizer` (photo → painting), :class:`Sampler` (noise → painting, DCGAN) and
:class:`StyleTransfer` (photo + any painting → painting in its style, AdaIN) each own
one ``InferenceSession``, try the CUDA provider first and fall back to the CPU, and report
which one really runs (``onnxruntime-gpu`` lists CUDA as available even on machines without a
GPU, so only the session's own ``get_providers()`` is trusted). Both take the model as a file
path, an MLflow URI (``models:/artshift@champion``) or the ONNX file's bytes. Neither imports
torch: ``pip install 'artshift[serve]'`` is all they need.

Example::

    from artshift import Stylizer

    stylizer = Stylizer("models/generator.onnx")
    painting = stylizer.stylize("photo.jpg")      # a path or PIL image in → PIL image out
    pixels = stylizer.stylize(numpy_rgb_array)    # (H, W, 3) uint8 in → same out
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

from artshift.errors import ArtShiftError, ImageTooLarge
from artshift.generator_io import METADATA_KEY, GeneratorInput, ModelRef, resolve_model
from artshift.images import load_rgb, rgb_pixels, upright_rgb

# A model: an ONNX file's path, an MLflow URI (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/...),
# the file's bytes, or a ModelRef the CLI resolved already.
ModelSource = str | os.PathLike | bytes | ModelRef
# What Stylizer.stylize takes: a PIL image, an (H, W, 3) uint8 array, or an image file's path;
# it gives back an array for an array, a PIL image otherwise.
ImageInput = Image.Image | np.ndarray | str | os.PathLike
ImageOutput = Image.Image | np.ndarray
PREFERRED_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
_ORT_FATAL_ONLY = 4
# Below this side the generator's innermost reflection padding has nothing to reflect.
MIN_SIDE = 16
# The default tile side for photos (`--tile`), and an AdaIN photo's largest side.
DEFAULT_TILE = 1024
# Runs of up to this many pixels (batch × height × width) use ONNX Runtime's memory arena, which
# keeps memory for the next image so small images stay fast; larger runs use a session without it.
ARENA_MAX_PIXELS = 512 * 512
# glibc's mallopt option, and the size from which the C heap serves blocks with their own mmap
# (given back to the system at free) once big runs leave the arena: see _fix_mmap_threshold.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20
# AdaIN style images are scaled down to this longer side (Huang & Belongie's 512): the style's
# statistics need no more, and it bounds the VGG pass on an uploaded painting.
STYLE_SIDE = 512
# The rank of each input an exported generator takes, by kind, and how to say it in an error.
INPUT_RANKS = {GeneratorInput.PHOTO: (4,), GeneratorInput.NOISE: (2,), GeneratorInput.PHOTO_AND_STYLE: (4, 4, 0)}
INPUT_WANTED = {GeneratorInput.PHOTO: "one float tensor (N, 3, H, W)",
                GeneratorInput.NOISE: "one float tensor (N, z_dim)",
                GeneratorInput.PHOTO_AND_STYLE: "float tensors photo (N, 3, H, W), style (N, 3, H', W') and alpha ()"}


def _silence_provider_loader() -> None:
    """Hide ORT's C++ errors about missing CUDA libraries: falling back to CPU is expected."""
    import onnxruntime as ort

    ort.set_default_logger_severity(_ORT_FATAL_ONLY)


def _fix_mmap_threshold() -> None:
    """Make glibc serve every block of 1 MiB or more with its own mmap, for the rest of the process.

    Without the arena, ONNX Runtime's tensors come from the C heap, and glibc raises its mmap
    threshold to the size of each big block freed (up to 32 MiB), so a tile's mid-sized tensors
    then land in the heap and fragment it: the same 4000×3000 photo peaked at 0.81–0.84 GB, varying
    from run to run as the two threads' allocations interleaved. A fixed threshold keeps it at
    0.73–0.74 GB. Elsewhere than glibc (no ``mallopt``) nothing changes.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def _available_providers() -> list[str]:
    """:data:`PREFERRED_PROVIDERS` that this ONNX Runtime build has (asking the CPU-only build of
    ``artshift[serve]`` for CUDA prints a warning on every load)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [provider for provider in PREFERRED_PROVIDERS if provider in available]


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


def session_options(threads: int, memory_arena: bool = True):
    """The ONNX Runtime session options every ArtShift runner uses (and the latency benchmark
    measures): all graph optimisations, ``threads`` intra-op threads (0: all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    # The memory pattern plans one block per input shape on top of what the arena already
    # holds: a second run at the same shape doubled the peak (1.85 vs 0.95 GB, 1024 px tile).
    options.enable_mem_pattern = False
    options.enable_cpu_mem_arena = memory_arena
    # Idle intra-op threads sleep instead of spinning: on a CPU the spinning threads of one
    # session (or of the other server worker) take cores from the one that is running.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _open_source(model: ModelSource) -> tuple[str | bytes, ModelRef]:
    """What ONNX Runtime opens for ``model`` (a file name or the bytes) and the reference naming it."""
    if isinstance(model, bytes | bytearray | memoryview):
        return bytes(model), ModelRef(None, f"<{len(model)} bytes>")
    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    if not ref.path.is_file():
        raise ArtShiftError(f"{ref.path}: model file not found (run `dvc repro` to build it)")
    return str(ref.path), ref


def _takes_rank(arg, rank: int) -> bool:
    """Whether an ONNX Runtime input ``arg`` is a float32 tensor of ``rank`` (3 channels if an image)."""
    shape = list(arg.shape)
    wrong_channels = rank == 4 and len(shape) == 4 and isinstance(shape[1], int) and shape[1] != 3
    return arg.type == "tensor(float)" and len(shape) == rank and not wrong_channels


class OnnxGenerator:
    """One ``InferenceSession`` on the best available provider, run with IO binding on CUDA.

    ``model`` is an ONNX file's path, an MLflow URI such as ``models:/artshift@champion`` (needs
    the ``train`` extra's MLflow) or the file's bytes; ``providers`` overrides the CUDA → CPU
    order, ``threads`` sets ONNX Runtime's intra-op threads (0: all cores).
    """

    def __init__(self, model: ModelSource, providers: list[str] | None = None, threads: int = 0):
        source, self.ref = _open_source(model)
        self.name = self.ref.name
        _silence_provider_loader()
        self._source, self._providers, self._threads = source, providers or _available_providers(), threads
        self.session = self._open_session(memory_arena=True)
        self.provider = self.session.get_providers()[0]  # the one that actually runs it
        self._large_run_session = None  # opened at the first run above ARENA_MAX_PIXELS
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.takes = GeneratorInput(self.metadata.get(METADATA_KEY))
        except ValueError:
            raise ArtShiftError(f"{self.name}: not an ArtShift generator (its metadata has no valid "
                                f"{METADATA_KEY!r}; export it with `dvc repro export`)") from None
        self._check_inputs()
        self.input_shape = self.session.get_inputs()[0].shape
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def _open_session(self, memory_arena: bool):
        """An ``InferenceSession`` of the model, with or without ONNX Runtime's CPU memory arena."""
        import onnxruntime as ort

        try:
            return ort.InferenceSession(self._source, session_options(self._threads, memory_arena),
                                        providers=self._providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ArtShiftError(f"{self.name}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None

    def _session_for(self, feeds: dict[str, np.ndarray]):
        """The session to run ``feeds`` on: the arena session for runs of up to
        :data:`ARENA_MAX_PIXELS`, an arena-less one for larger runs. The arena's chunks cannot be
        merged across its regions, so a 1024 px tile of the default generator made it hold twice
        what the tile needs (1.76 GB peak for a 4000×3000 photo, 0.79 GB without it). On CUDA the
        one session serves every run: a second would hold a second copy of the GPU's memory."""
        first = next(iter(feeds.values()))
        small = first.ndim < 4 or first.shape[0] * first.shape[2] * first.shape[3] <= ARENA_MAX_PIXELS
        if small or self.provider != "CPUExecutionProvider":
            return self.session
        if self._large_run_session is None:
            _fix_mmap_threshold()
            self._large_run_session = self._open_session(memory_arena=False)
        return self._large_run_session

    def describe(self) -> str:
        """Which model this is, e.g. ``models:/artshift@champion (version 3, run 0f9c…)``."""
        return self.ref.describe(self.metadata)

    def _check_inputs(self) -> None:
        """Refuse a model whose inputs are not the float32 tensors its kind takes (photos: rank 4
        with 3 channels; noise: rank 2; AdaIN: photo, style and a scalar alpha): ONNX Runtime
        would fail at the first image instead."""
        inputs = self.session.get_inputs()
        ranks = INPUT_RANKS[self.takes]
        if len(inputs) != len(ranks) or not all(_takes_rank(arg, rank) for arg, rank in zip(inputs, ranks)):
            found = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs) or "no input"
            raise ArtShiftError(f"{self.name}: a {self.takes} generator must take {INPUT_WANTED[self.takes]}; "
                                f"this model takes {found}")

    def _run(self, inputs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """One session run on one array (the only input) or on arrays by input name."""
        feeds = inputs if isinstance(inputs, dict) else {self.input_name: inputs}
        # C-contiguous float32 (np.asarray, not np.ascontiguousarray, which makes a scalar 1-D)
        feeds = {name: np.asarray(array, dtype=np.float32, order="C") for name, array in feeds.items()}
        session = self._session_for(feeds)
        if self.provider == "CUDAExecutionProvider":
            # IO binding: one upload, output allocated on the GPU, one download; no staging copies.
            binding = session.io_binding()
            for name, array in feeds.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output(self.output_name, "cuda")
            session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        (out,) = session.run([self.output_name], feeds)
        return out


class Sampler(OnnxGenerator):
    """A noise → painting ONNX generator (DCGAN): a seed in, new paintings out.

    ``model`` is a path, an MLflow URI (``models:/artshift-dcgan/latest``) or the ONNX file's
    bytes, as for :class:`OnnxGenerator`. A model that repaints photos is refused
    (:class:`~artshift.errors.ArtShiftError`)::

        sampler = Sampler("models/generator.onnx")
        paintings = list(sampler.sample(4, seed=7))      # 4 PIL images, the same for seed 7
        pixels = sampler.sample_pixels(4, seed=7)        # the same as (4, S, S, 3) uint8
    """

    def __init__(self, model: ModelSource, providers: list[str] | None = None, threads: int = 0):
        super().__init__(model, providers, threads)
        if self.takes is not GeneratorInput.NOISE:
            raise ArtShiftError(f"{self.name}: this model repaints photos; use `artshift stylize` with it")
        self.z_dim = int(self.input_shape[1])

    def run_array(self, z: np.ndarray) -> np.ndarray:
        """(N, z_dim) latent vectors → (N, 3, S, S) paintings in [-1, 1]."""
        return self._run(z)

    def sample(self, count: int, seed: int = 0, batch: int = 16) -> Iterator[Image.Image]:
        """``count`` paintings drawn from the noise of ``seed`` (same seed, same paintings),
        computed ``batch`` at a time so memory stays bounded."""
        for pixels in self._sample_batches(count, seed, batch):
            yield from (Image.fromarray(one) for one in pixels)

    def sample_pixels(self, count: int, seed: int = 0, batch: int = 16) -> np.ndarray:
        """The paintings of :meth:`sample` as one (count, S, S, 3) uint8 array, for NumPy users."""
        return np.concatenate(list(self._sample_batches(count, seed, batch)))

    def _sample_batches(self, count: int, seed: int, batch: int) -> Iterator[np.ndarray]:
        """(n, S, S, 3) uint8 paintings, ``batch`` at a time, from the noise of ``seed``."""
        if count < 1:
            raise ArtShiftError(f"count: must be >= 1, got {count}")
        z = noise(count, self.z_dim, seed)
        for start in range(0, count, batch):
            yield _to_uint8(self.run_array(z[start:start + batch]).transpose(0, 2, 3, 1))


class Stylizer(OnnxGenerator):
    """An ONNX generator ready to repaint images of any size: the result has the input's size.

    ``model`` is a path, an MLflow URI (``models:/artshift@champion``) or the ONNX file's bytes,
    as for :class:`OnnxGenerator`; a DCGAN (a model of noise) is refused. :meth:`stylize` takes a
    PIL image, an (H, W, 3) uint8 array or an image file's path and gives back the kind it got
    (a path gives a PIL image)::

        stylizer = Stylizer("models:/artshift@champion")
        stylizer.stylize(Image.open("photo.jpg")).save("painting.png")

    Images with a side above ``tile`` are processed in overlapping ``tile``-sized tiles whose
    overlaps are cross-faded, one row of tiles at a time: besides the 8-bit input and output,
    only one row of tiles is held in floating point, so memory stays bounded whatever the size.
    """

    def __init__(self, model: ModelSource, providers: list[str] | None = None, threads: int = 0,
                 tile: int = DEFAULT_TILE, overlap: int = 64):
        super().__init__(model, providers, threads)
        if self.takes is GeneratorInput.NOISE:
            raise ArtShiftError(f"{self.name}: this model paints from noise (DCGAN); use `artshift sample` with it")
        if self.takes is not GeneratorInput.PHOTO:
            raise ArtShiftError(f"{self.name}: this model needs a style image besides the photo (AdaIN); "
                                "run it with StyleTransfer")
        if not 0 <= overlap < tile // 2:
            raise ArtShiftError(f"tile overlap must be in [0, tile/2), got overlap {overlap} for tile {tile}")
        self.tile, self.overlap = tile, overlap
        self.size_multiple = int(self.metadata.get("size_multiple", "4"))

    def run_array(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 in [-1, 1] → same shape; pads to the size multiple and crops back.

        On the CPU a batch bigger than :data:`ARENA_MAX_PIXELS` runs in slices that fit it, so
        it stays in the fast arena session (the arena-less one pays a page fault for every page
        of every tensor, every run: 256 px batch 8 took twice as long per image in int8). The
        generator normalises each image on its own, so the slices give the same result as one run.
        """
        padded, height, width = _reflect_pad(batch.astype(np.float32, copy=False), self.size_multiple)
        step = self.images_per_run(padded.shape[2], padded.shape[3], len(padded))
        outs = [self._run(padded[start:start + step]) for start in range(0, len(padded), step)]
        return (outs[0] if len(outs) == 1 else np.concatenate(outs))[:, :, :height, :width]

    def images_per_run(self, height: int, width: int, count: int) -> int:
        """How many (padded) ``height`` × ``width`` images one session run takes: all ``count``
        on a GPU, on the CPU as many as fit :data:`ARENA_MAX_PIXELS` (at least one)."""
        if self.provider != "CPUExecutionProvider":
            return count
        return max(1, min(count, ARENA_MAX_PIXELS // (height * width)))

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
        _, height, width, _ = pixels.shape
        if self.tile_count(width, height) > 1:
            self._run_tiled(pixels[0], before_tile)
        else:
            if before_tile:
                before_tile(0, 1)
            pixels[...] = _to_uint8(self.run_array(_to_input(pixels)).transpose(0, 2, 3, 1))
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

    def stylize(self, image: ImageInput, before_tile: Callable[[int, int], None] | None = None) -> ImageOutput:
        """Repaint one image; the result has the input's width and height (after its EXIF
        orientation, which is applied as ``artshift stylize`` does).

        ``image``: a PIL image (any mode; transparency goes onto white) → a PIL RGB image; an
        (H, W, 3) uint8 RGB array → a new array of that shape (the input is not changed); a path
        to an image file → a PIL image. ``before_tile(done, total)`` is called before each model
        run (raise in it to stop a run that takes too long).
        """
        pixels, back = _pixels_of(image)
        return back(self.run_pixels(pixels[None], before_tile)[0])

    def stylize_batch(self, images: list[ImageInput]) -> list[ImageOutput]:
        """Repaint images (each as :meth:`stylize` takes and gives it); same-sized ones that fit
        one tile go through the model as one batch."""
        prepared = [_pixels_of(image) for image in images]
        shapes = {pixels.shape for pixels, _ in prepared}
        if len(shapes) == 1 and self.tile_count(*prepared[0][0].shape[1::-1]) == 1:
            outputs = self.run_pixels(np.stack([pixels for pixels, _ in prepared]))
        else:
            outputs = [self.run_pixels(pixels[None])[0] for pixels, _ in prepared]
        return [back(out) for (_, back), out in zip(prepared, outputs)]


def _pixels_of(image: ImageInput) -> tuple[np.ndarray, Callable[[np.ndarray], ImageOutput]]:
    """Writable (H, W, 3) uint8 pixels of ``image``, upright as the CLI reads it, and the function
    that turns result pixels back into the kind given (array for an array, else a PIL image)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ArtShiftError(f"image: expected an (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}")
        return image.copy(), lambda pixels: pixels
    if isinstance(image, str | os.PathLike):
        return rgb_pixels(load_rgb(image)), Image.fromarray
    if isinstance(image, Image.Image):
        return rgb_pixels(upright_rgb(image)), Image.fromarray
    raise ArtShiftError(f"image: expected a PIL image, an (H, W, 3) uint8 array or a path, got {type(image).__name__}")


class StyleTransfer(OnnxGenerator):
    """A photo + style image → painting ONNX generator (AdaIN): any painting as the style.

    The photo is padded to the size multiple and the output cropped back; the style image may
    have any size (at least the size multiple), and ``alpha`` mixes content (0) and style (1).

    A photo is never tiled: AdaIN re-scales the photo's features to the style's statistics over
    the whole image, so each tile would be normalised with its own statistics and the tiles
    would not match. :meth:`stylize` runs the whole photo in one pass and refuses photos with a
    side above ``max_side`` (:meth:`check_photo`, bounding memory and time); style images are
    scaled down to ``style_side`` (:meth:`prepare_style`), which bounds their pass too.
    """

    def __init__(self, model: ModelSource, providers: list[str] | None = None, threads: int = 0,
                 max_side: int = DEFAULT_TILE, style_side: int = STYLE_SIDE):
        super().__init__(model, providers, threads)
        if self.takes is not GeneratorInput.PHOTO_AND_STYLE:
            raise ArtShiftError(f"{self.name}: this model takes no style image ({self.takes.value})")
        self.size_multiple = int(self.metadata.get("size_multiple", "8"))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.max_side, self.style_side = max_side, style_side

    def run_array(self, photos: np.ndarray, styles: np.ndarray, alpha: float = 1.0) -> np.ndarray:
        """(N, 3, H, W) photos and (N, 3, H', W') styles in [-1, 1] → (N, 3, H, W) paintings."""
        if not 0.0 <= alpha <= 1.0:
            raise ArtShiftError(f"alpha must be in [0, 1], got {alpha}")
        padded, height, width = _reflect_pad(photos.astype(np.float32, copy=False), self.size_multiple)
        styles = _reflect_pad(styles.astype(np.float32, copy=False), 1)[0]  # at least MIN_SIDE
        feeds = dict(zip(self.input_names, (padded, styles, np.array(alpha, dtype=np.float32)), strict=True))
        return self._run(feeds)[:, :, :height, :width]

    def check_photo(self, width: int, height: int, name: str, hint: str = "scale it down or raise --tile") -> None:
        """Raise :class:`ImageTooLarge` ("<name>: ...: <hint>") for a photo with a side above ``max_side``."""
        if max(width, height) > self.max_side:
            raise ImageTooLarge(f"{name}: image too large for one AdaIN pass ({width}x{height}, sides up to "
                                f"{self.max_side} px); AdaIN's statistics are global, so photos are not tiled: {hint}")

    def prepare_style(self, style: Image.Image) -> Image.Image:
        """The style image as the model gets it: scaled down (Lanczos, aspect kept) so that its
        longer side is at most ``style_side``; smaller images are left as they are."""
        scale = self.style_side / max(style.size)
        if scale >= 1:
            return style
        return style.resize((max(1, round(style.width * scale)), max(1, round(style.height * scale))),
                            Image.Resampling.LANCZOS)

    def stylize(self, photo: ImageInput, style: ImageInput, alpha: float = 1.0) -> ImageOutput:
        """Repaint one photo in the style of one image, in one pass; the result has the photo's
        size and the photo's kind (each taken as :meth:`Stylizer.stylize` takes an image).
        Photos with a side above ``max_side`` are refused; styles are scaled down first."""
        (photo_pixels, back), (style_pixels, _) = _pixels_of(photo), _pixels_of(style)
        self.check_photo(photo_pixels.shape[1], photo_pixels.shape[0], "photo")
        if max(style_pixels.shape[:2]) > self.style_side:
            style_pixels = rgb_pixels(self.prepare_style(Image.fromarray(style_pixels)))
        out = self.run_array(_to_input(photo_pixels[None]), _to_input(style_pixels[None]), alpha)[0]
        return back(_to_uint8(out.transpose(1, 2, 0)))


RUNNERS = {GeneratorInput.PHOTO: Stylizer, GeneratorInput.NOISE: Sampler, GeneratorInput.PHOTO_AND_STYLE: StyleTransfer}


def open_generator(model: ModelSource, providers: list[str] | None = None,
                   threads: int = 0) -> Sampler | Stylizer | StyleTransfer:
    """The runner that fits what the model takes: a :class:`Stylizer` for photos, a
    :class:`Sampler` for noise, a :class:`StyleTransfer` for a photo and a style image."""
    probe = OnnxGenerator(model, providers, threads)
    return RUNNERS[probe.takes](probe.ref if probe.ref.path else model, providers, threads)


def open_photo_model(model: ModelSource, threads: int = 0, tile: int = DEFAULT_TILE,
                     providers: list[str] | None = None) -> Stylizer | StyleTransfer:
    """The runner of a model that repaints photos, for ``artshift stylize`` and the service: a
    :class:`Stylizer` tiling at ``tile`` px, or for AdaIN a :class:`StyleTransfer` that runs
    photos of sides up to ``tile`` in one pass. A DCGAN is refused (one line)."""
    probe = OnnxGenerator(model, providers, threads)
    source = probe.ref if probe.ref.path else model
    if probe.takes is GeneratorInput.PHOTO_AND_STYLE:
        return StyleTransfer(source, providers, threads, max_side=tile)
    return Stylizer(source, providers, threads, tile=tile)


def _to_input(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32 in [-1, 1], the generator's input."""
    return pixels.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] (any layout) → uint8 pixels, clipped and rounded."""
    values = (values + 1.0) * 127.5
    np.clip(values, 0, 255, out=values)
    return np.rint(values, out=values).astype(np.uint8)
