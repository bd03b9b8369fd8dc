"""Inception features the way FID needs them: the resize step, batching, and a cache.

``resize`` picks how images reach 299×299: ``pytorch-fid`` (bilinear on float tensors inside
the network) or ``clean-fid`` (PIL bicubic on the uint8 image, Parmar et al. 2022).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import numpy as np
import torch
from PIL import Image

from artshift.choices import ResizeMode
from artshift.files import save_with
from artshift.images import to_image, to_tensor
from artshift.metrics.inception import INPUT_SIZE, build_inception, extract_features

RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)


def clean_resize(images: torch.Tensor) -> torch.Tensor:
    """clean-fid's resize: quantise to uint8, PIL bicubic to 299×299, back to [-1, 1]."""
    return torch.stack([to_tensor(to_image(img).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC))
                        for img in images])


class FeatureExtractor:
    """Inception pool features with the chosen resize; ``label`` says which weights."""

    def __init__(self, state_dict: dict[str, torch.Tensor], label: str, resize: str = "pytorch-fid"):
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.resize = resize
        self.label = label
        self.net = build_inception(state_dict, resize_input=resize == "pytorch-fid")

    def to(self, device: torch.device) -> FeatureExtractor:
        """Run the network on ``device`` (images are moved there batch by batch)."""
        self.net.to(device)
        return self

    def __call__(self, images: torch.Tensor, batch_size: int = 16) -> np.ndarray:
        """(N, 3, H, W) in [-1, 1] → (N, 2048) float64 features."""
        if self.resize == "clean-fid":
            # Resize one batch at a time so a large set never holds all 299×299 copies at once.
            return np.concatenate([extract_features(self.net, clean_resize(images[i:i + batch_size]), batch_size)
                                   for i in range(0, len(images), batch_size)])
        return extract_features(self.net, images, batch_size)


def cached(cache_dir: Path, key_parts: list[str], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Features stored under a hash of ``key_parts`` (extractor, resize, image hashes).

    Re-evaluating a new model against the same reference paintings then skips their forward pass.
    """
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    features = compute()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, features)

    save_with(path, write)
    return features
