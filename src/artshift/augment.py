"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake alike.

With little data D memorises the training set; augmenting both what D sees of real and of fake
images (and back-propagating through the augmentation into G) keeps it from overfitting
without leaking the augmentation into G's outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import torch
from torch.nn import functional as F

from artshift.choices import DiffAugmentPolicy

POLICIES: tuple[str, ...] = get_args(DiffAugmentPolicy)
# Random numbers are drawn on the CPU from the run's generator and then moved to the images'
# device, so a run draws the same numbers on any device.


def _color(x: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    b = x.shape[0]
    brightness = torch.rand(b, 1, 1, 1, generator=rng).to(x.device) - 0.5
    x = x + brightness
    saturation = torch.rand(b, 1, 1, 1, generator=rng).to(x.device) * 2
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * saturation + mean
    contrast = torch.rand(b, 1, 1, 1, generator=rng).to(x.device) + 0.5
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def _translation(x: torch.Tensor, rng: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    shift = torch.tensor([h, w], device=x.device) * ratio
    offsets = ((torch.rand(b, 2, generator=rng).to(x.device) * 2 - 1) * shift).round()
    # An affine grid with a pure translation, zero padding outside: differentiable in x.
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * offsets[:, 1] / w
    theta[:, 1, 2] = -2 * offsets[:, 0] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _cutout(x: torch.Tensor, rng: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h - ch + 1, (b, 1, 1), generator=rng).to(x.device)
    left = torch.randint(0, w - cw + 1, (b, 1, 1), generator=rng).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    hole = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~hole)[:, None].to(x.dtype)


_OPS: dict[DiffAugmentPolicy, Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]] = {
    "color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: list[str], rng: torch.Generator | None = None) -> torch.Tensor:
    """Apply the augmentations in ``policy`` (names from :data:`POLICIES`) in order; same shape out."""
    for name in policy:
        x = _OPS[name](x, rng)
    return x
