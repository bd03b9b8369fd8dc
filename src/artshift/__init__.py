"""ArtShift: GAN-based abstract-art style transfer, from photos and paintings to an ONNX model.

The public Python API runs an exported model with ONNX Runtime (no torch needed)::

    from artshift import Stylizer, Sampler

    Stylizer("models/generator.onnx").stylize("photo.jpg").save("painting.png")

``Stylizer`` and ``Sampler`` (:mod:`artshift.inference`) are imported on first use, so
``import artshift`` stays light.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from artshift.inference import Sampler, Stylizer

try:
    __version__ = metadata.version("artshift")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Sampler", "Stylizer", "__version__"]
_LAZY = {"Stylizer", "Sampler"}


def __getattr__(name: str):
    """``artshift.Stylizer`` / ``artshift.Sampler``, imported from :mod:`artshift.inference` when first asked for."""
    if name in _LAZY:
        from artshift import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'artshift' has no attribute {name!r}")
