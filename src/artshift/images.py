"""The one image loader of the project: any picture file in, clean 8-bit RGB out.

Preprocessing, ``artshift stylize`` and the HTTP service all decode through :func:`load_rgb` /
:func:`decode_rgb`, so every path sees the same orientation, colour conversion and the same
one-line :class:`~artshift.errors.ImageError` for files that cannot be used.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from artshift.errors import ImageError, ImageTooLarge
from artshift.files import atomic_path

if TYPE_CHECKING:  # torch is imported where tensors are made: stylize and serve never load it (~500 MB)
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# Pillow formats behind those suffixes ("JPEG" also opens the multi-picture JPEGs of cameras).
# Other formats are refused: some plugins (EPS) run external programs on untrusted input.
DECODE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")
# Refuse larger images before decoding them: a 64-megapixel RGB image is already ~200 MB.
MAX_PIXELS = 64_000_000
JPEG_QUALITY = 95

# Pillow logs some decoder failures ("More samples per pixel than can be decoded") before raising;
# without a handler Python prints them to stderr beside our one-line error. Applications that
# configure logging still get them.
logging.getLogger("PIL").addHandler(logging.NullHandler())

_WHITE = (255, 255, 255, 255)
_PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}


@dataclass(frozen=True)
class SizeLimits:
    """The largest image accepted, checked on the header before any pixel is decoded: its
    pixel count (decompression bombs), its longest side and its aspect ratio (long / short side)."""

    max_pixels: int = MAX_PIXELS
    max_side: int | None = None
    max_aspect: float | None = None

    def check(self, width: int, height: int, name: str) -> None:
        """Raise :class:`ImageTooLarge` ("<name>: <reason and limit>") when a limit is exceeded."""
        if width * height > self.max_pixels:
            raise ImageTooLarge(f"{name}: image too large ({width}x{height} = {width * height} pixels, "
                                f"limit {self.max_pixels}), refusing a possible decompression bomb")
        if self.max_side and max(width, height) > self.max_side:
            raise ImageTooLarge(f"{name}: image side too long ({width}x{height}, limit {self.max_side} px)")
        if self.max_aspect and max(width, height) > self.max_aspect * min(width, height):
            raise ImageTooLarge(f"{name}: image too elongated ({width}x{height}, aspect ratio "
                                f"{max(width, height) / min(width, height):.1f}, limit {self.max_aspect:g})")


def load_rgb(path: str | Path, limits: SizeLimits = SizeLimits()) -> Image.Image:
    """Decode the image file at ``path`` into an upright 8-bit RGB image.

    Raises :class:`ImageError` ("<path>: <reason>") for a missing, unreadable, truncated,
    empty or non-image file and :class:`ImageTooLarge` for images beyond ``limits``.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - only the open() call's OSError means "cannot read"
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror or type(exc).__name__})") from None
    with handle:
        return _decode(handle, str(path), limits)


def decode_rgb(data: bytes, name: str = "<bytes>", limits: SizeLimits = SizeLimits()) -> Image.Image:
    """Like :func:`load_rgb` for an in-memory file (an upload); ``name`` labels the errors."""
    return _decode(io.BytesIO(data), name, limits)


def _decode(handle: BinaryIO, name: str, limits: SizeLimits) -> Image.Image:
    """Open, size-check, fully load and orient one image, then convert it to RGB."""
    if not handle.read(1):
        raise ImageError(f"{name}: empty file")
    handle.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow's warnings about damaged metadata ("Corrupt EXIF data") would be extra stderr lines;
            # its decompression-bomb warning too: the size is checked against ``limits`` right after opening.
            warnings.simplefilter("ignore")
            with Image.open(handle, formats=DECODE_FORMATS) as image:
                _check_size(image, name, limits)
                image.load()  # decode everything now, so truncated data fails here
                upright = upright_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a supported image (expected {', '.join(DECODE_FORMATS)})") from None
    except Image.DecompressionBombError:  # Pillow's own limit, twice MAX_IMAGE_PIXELS: refused while opening
        raise ImageTooLarge(f"{name}: image too large (over {2 * Image.MAX_IMAGE_PIXELS} pixels, limit "
                            f"{limits.max_pixels}), refusing a possible decompression bomb") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on corrupt data
        raise ImageError(f"{name}: {_describe_failure(exc)}") from None
    return upright


def upright_rgb(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (as a viewer shows it) and converted to 8-bit
    RGB by :func:`to_rgb`: what every loader here makes of a decoded picture."""
    return to_rgb(ImageOps.exif_transpose(image))


def _check_size(image: Image.Image, name: str, limits: SizeLimits) -> None:
    """Refuse empty images and images beyond ``limits``, before any pixel is decoded."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has zero size ({width}x{height})")
    limits.check(width, height, name)


def _describe_failure(exc: Exception) -> str:
    """A short reason for a decoder failure: 'truncated' when Pillow ran out of data."""
    detail = (str(exc).splitlines() or [""])[0] or type(exc).__name__
    if "truncated" in detail.lower() or isinstance(exc, EOFError):
        return f"truncated image file ({detail})"
    return f"corrupt or unreadable image data ({detail})"


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit RGB without losing its look.

    Transparency is composited onto white (not left as black garbage), 16/32-bit integer and
    float greyscale are scaled to 8 bit instead of clipped, CMYK/LAB/YCbCr/HSV/palette/1-bit go
    through Pillow's colour conversions. An opaque RGB image is returned unchanged.
    """
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image), image.mode)).convert("RGB")
    image = image.convert(_PREMULTIPLIED[image.mode]) if image.mode in _PREMULTIPLIED else image
    if image.has_transparency_data:  # an alpha band, or a transparent palette index / colour
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map high-bit-depth greyscale to 0..255 using the smallest nominal range that fits.

    16-bit images use 0..65535. 32-bit integer and float data carry no range of their own, so
    the first of 0..1 (float only), 0..255 and 0..65535 holding every value is used; data
    outside all of them (negative, huge) is stretched from its minimum to its maximum.
    """
    data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(data.min()), float(data.max())
    candidates = (65535.0,) if mode.startswith("I;16") else ((1.0,) if mode == "F" else ()) + (255.0, 65535.0)
    top = next((c for c in candidates if low >= 0 and high <= c), None)
    if top is not None:
        low, high = 0.0, top
    return np.round((data - low) / max(high - low, 1e-12) * 255).astype(np.uint8)


def rgb_pixels(image: Image.Image) -> np.ndarray:
    """A writable (H, W, 3) uint8 copy of an image's RGB pixels (what the Stylizer works on)."""
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


def resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` (Lanczos) and keep the centred ``size``×``size`` square.

    Cropping happens in source coordinates (``resize(box=...)``), so the square is exactly
    centred with no second rounding step; ``reducing_gap`` keeps big photos fast.
    """
    if size < 1:
        raise ValueError(f"resize_and_crop: size must be >= 1, got {size}")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An image as a (3, H, W) float32 tensor in [-1, 1], the generator's input range."""
    import torch

    pixels = np.asarray(to_rgb(image), dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1).div(127.5).sub(1.0).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """The inverse of :func:`to_tensor`: a (3, H, W) tensor in [-1, 1] → RGB image (clamped, rounded)."""
    import torch

    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"to_image: expected a (3, H, W) tensor, got shape {tuple(tensor.shape)}")
    pixels = tensor.detach().float().cpu().add(1.0).mul(127.5).clamp(0, 255).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).numpy())


def save_image(image: Image.Image, path: str | Path, format: str | None = None) -> None:
    """Write ``image`` atomically; the format comes from ``format`` or the file suffix.

    JPEG and WebP are saved at quality 95. An unknown suffix raises :class:`ImageError`
    before anything is written.
    """
    path = Path(path)
    format = format or Image.registered_extensions().get(path.suffix.lower())
    if format is None:
        raise ImageError(f"{path}: unknown image format for suffix {path.suffix!r}")
    options = {"quality": JPEG_QUALITY} if format.upper() in ("JPEG", "WEBP") else {}
    with atomic_path(path) as tmp:
        image.save(tmp, format=format, **options)
