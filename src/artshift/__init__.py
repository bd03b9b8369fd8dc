"""ArtShift: GAN-based abstract-art style transfer, from photos and paintings to an ONNX model.

The public Python API runs an exported model with ONNX Runtime (no torch needed)::

    from artshift import Stylizer, Sampler

    Stylizer("models/generator.onnx").stylize("photo.jpg").save("painting.png")

``Stylizer`` and ``Sampler`` (:mod:`artshift.inference`) are imported on first use, so
``import artshift`` stays light.
"""

from __future__ import annotations

import importlib
from importlib import metadata

try:
    __version__ = metadata.version("artshift")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Sampler", "Stylizer", "__version__"]
_LAZY = {"Stylizer", "Sampler"}


def __getattr__(name: str):
    """``artshift.Stylizer`` / ``artshift.Sampler``, imported from :mod:`artshift.inference` when first
    asked for (by name: a pipeline stage that imports ``artshift`` neither runs nor depends on it)."""
    if name in _LAZY:
        return getattr(importlib.import_module("artshift.inference"), name)
    raise AttributeError(f"module 'artshift' has no attribute {name!r}")
