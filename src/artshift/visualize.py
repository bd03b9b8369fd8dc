"""Picture grids for people: inputs beside outputs, one row per image, or a tile of samples."""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from artshift.images import to_image

_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)


def side_by_side(columns: list[torch.Tensor], labels: list[str] | None = None, padding: int = 2) -> Image.Image:
    """A grid whose row i shows ``columns[0][i] | columns[1][i] | ...`` (tensors in [-1, 1]),
    under a strip that names each column when ``labels`` are given."""
    rows = torch.stack(columns, dim=1).flatten(0, 1)  # (N * len(columns), 3, H, W), row-major
    grid = to_image(make_grid(rows, nrow=len(columns), padding=padding, pad_value=1.0))
    return with_header(grid, labels, columns[0].shape[-1] + padding, padding) if labels else grid


def with_header(grid: Image.Image, labels: list[str], cell: int, padding: int) -> Image.Image:
    """``grid`` below a white strip with ``labels[j]`` centred over column ``j`` (``cell`` pixels
    wide, starting after ``padding``); a label wider than its column is clipped to it."""
    font = ImageFont.load_default(size=max(10, cell // 10))
    height = int(font.size * 1.6)
    page = Image.new("RGB", (grid.width, grid.height + height), _WHITE)
    for index, label in enumerate(labels):
        strip = Image.new("RGB", (cell - padding, height), _WHITE)
        ImageDraw.Draw(strip).text((strip.width / 2, height / 2), label, fill=_BLACK, font=font, anchor="mm")
        page.paste(strip, (padding + index * cell, 0))
    page.paste(grid, (0, height))
    return page


def tile(images: torch.Tensor, padding: int = 2) -> Image.Image:
    """(N, 3, H, W) images in [-1, 1] laid out in a near-square grid, row by row."""
    grid = make_grid(images, nrow=math.ceil(math.sqrt(len(images))), padding=padding, pad_value=1.0)
    return to_image(grid)
