"""How much of the photo survives stylisation: SSIM between grayscale input and output.

A model can fool FID by ignoring its input and painting a generic picture; a content score
near 0 exposes that. 1.0 means the structure is untouched (the identity baseline).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# Luma weights of ITU-R BT.601, as in PIL's "L" conversion.
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] → (N, 1, H, W) luma in [0, 1]."""
    return ((images + 1) / 2 * _LUMA.to(images)[None, :, None, None]).sum(1, keepdim=True)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) of (N, 1, H, W) images in [0, 1], Gaussian window.

    Only positions where the window fits entirely are averaged (no padding).
    """
    x, y = x.double(), y.double()
    kernel = _gaussian_window(window, sigma).to(x)
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return score.mean(dim=(1, 2, 3))


def content_score(inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Mean grayscale SSIM between photos and their stylisations (both (N, 3, H, W) in [-1, 1])."""
    return float(ssim(grayscale(inputs), grayscale(outputs)).mean())
