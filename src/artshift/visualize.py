"""Picture grids for people: inputs beside outputs, one row per image, or a tile of samples."""

from __future__ import annotations

import math

import torch
from PIL import Image
from torchvision.utils import make_grid

from artshift.images import to_image


def side_by_side(columns: list[torch.Tensor], padding: int = 2) -> Image.Image:
    """A grid whose row i shows ``columns[0][i] | columns[1][i] | ...`` (tensors in [-1, 1])."""
    rows = torch.stack(columns, dim=1).flatten(0, 1)  # (N * len(columns), 3, H, W), row-major
    grid = make_grid(rows, nrow=len(columns), padding=padding, pad_value=1.0)
    return to_image(grid)


def tile(images: torch.Tensor, padding: int = 2) -> Image.Image:
    """(N, 3, H, W) images in [-1, 1] laid out in a near-square grid, row by row."""
    grid = make_grid(images, nrow=math.ceil(math.sqrt(len(images))), padding=padding, pad_value=1.0)
    return to_image(grid)
