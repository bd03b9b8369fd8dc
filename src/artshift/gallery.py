"""The style images the service offers an AdaIN model's users: a fixed list of files, by index.

The folder is listed once, when the service starts (``artshift serve --styles DIR``; by default
the processed test paintings). A request names a style by its index in that list only, so no
path from a request ever reaches the filesystem, and only the listed files can be read.
Thumbnails are made on first request and kept in memory; the images themselves are read from
disk on each request (a gallery of large paintings would not fit in memory), scaled as the
model gets them.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from artshift.errors import ArtShiftError
from artshift.images import IMAGE_SUFFIXES, load_rgb

DEFAULT_STYLES = Path("data/processed/test/paintings")
MAX_STYLES = 256  # the first ones, by name: the page shows them all
THUMBNAIL_SIDE = 96


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


class Gallery:
    """The first :data:`MAX_STYLES` image files (by name) directly in ``folder``, or none for
    ``None``; ``prepare`` scales a style image as the model gets it."""

    def __init__(self, folder: Path | None, prepare: Callable[[Image.Image], Image.Image] = lambda image: image):
        try:
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()) \
                if folder is not None else []
        except OSError as exc:
            raise ArtShiftError(f"{folder}: cannot list the style gallery ({exc.strerror or type(exc).__name__})") \
                from None
        self.folder, self.total = folder, len(files)
        self.paths: tuple[Path, ...] = tuple(files[:MAX_STYLES])
        self.prepare = prepare
        self._thumbnails: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def listing(self) -> list[dict[str, object]]:
        """Index, name and URLs of each style, in order."""
        return [{"index": index, "name": path.stem, "image": f"/v1/styles/{index}",
                 "thumbnail": f"/v1/styles/{index}/thumbnail"} for index, path in enumerate(self.paths)]

    def path(self, index: int) -> Path:
        """The listed file at ``index``; :class:`IndexError` for any other index (negative ones too)."""
        if not 0 <= index < len(self.paths):
            raise IndexError(f"no style {index}: the gallery has {len(self.paths)}")
        return self.paths[index]

    def image(self, index: int) -> bytes:
        """Style ``index`` as PNG, scaled as the model gets it (:class:`ImageError` if unreadable)."""
        return _encode(self.prepare(load_rgb(self.path(index))), "PNG")

    def thumbnail(self, index: int) -> bytes:
        """A JPEG of style ``index`` at most :data:`THUMBNAIL_SIDE` px, made once and cached."""
        with self._lock:
            cached = self._thumbnails.get(index)
        if cached is None:
            image = load_rgb(self.path(index))
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
            cached = _encode(image, "JPEG")
            with self._lock:
                self._thumbnails[index] = cached
        return cached
