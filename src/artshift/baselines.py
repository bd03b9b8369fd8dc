"""Classic baselines the GAN must beat: Reinhard et al. (2001) colour transfer.

Matches each photo's per-channel mean and std in CIE Lab to those of the painting set, or of
its own style image. It moves colours, not structure, so it shows how much of the FID gain is
just the palette.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import torch
from skimage import color


def _to_lab(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] → (N, H, W, 3) Lab."""
    rgb = ((images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).double().numpy()
    return color.rgb2lab(rgb)


def lab_statistics(batches: torch.Tensor | Iterable[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in Lab over all pixels of a set of images, given as one tensor or
    as batches streamed from disk (merged with Chan et al.'s pairwise update, so a painting set
    of any size is summarised in the memory of one batch)."""
    count, mean, m2 = 0, np.zeros(3), np.zeros(3)
    for images in [batches] if isinstance(batches, torch.Tensor) else batches:
        lab = _to_lab(images).reshape(-1, 3)
        batch_mean = lab.mean(axis=0)
        delta, total = batch_mean - mean, count + len(lab)
        mean = mean + delta * len(lab) / total
        m2 = m2 + ((lab - batch_mean) ** 2).sum(axis=0) + delta ** 2 * count * len(lab) / total
        count = total
    return mean, np.sqrt(m2 / count)


def image_lab_statistics(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel Lab mean and std of each image: two (N, 3) arrays."""
    means, stds = zip(*(lab_statistics(image[None]) for image in images))
    return np.stack(means), np.stack(stds)


def reinhard_transfer(images: torch.Tensor, target_mean: np.ndarray, target_std: np.ndarray) -> torch.Tensor:
    """Recolour each image so its Lab mean/std equal the target's, one target (3,) for all or
    one per image (N, 3); same shape, in [-1, 1]."""
    lab = _to_lab(images)
    mean = lab.mean(axis=(1, 2), keepdims=True)
    std = lab.std(axis=(1, 2), keepdims=True)
    target_mean, target_std = (np.asarray(t).reshape(-1, 1, 1, 3) for t in (target_mean, target_std))
    matched = (lab - mean) / np.maximum(std, 1e-6) * target_std + target_mean
    with warnings.catch_warnings():
        # Matched colours can fall outside the sRGB gamut; clipping them is the intended fix.
        warnings.simplefilter("ignore", UserWarning)
        rgb = np.clip(color.lab2rgb(matched), 0, 1)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float() * 2 - 1
