"""In-memory image sets for training and evaluation (the processed images are small)."""

from __future__ import annotations

from pathlib import Path

import torch

from artshift.errors import DataError
from artshift.images import load_rgb, to_tensor


def image_files(folder: str | Path) -> list[Path]:
    """The PNG files of a processed folder, sorted so every run sees the same order."""
    return sorted(Path(folder).glob("*.png"))


def load_folder(folder: str | Path, limit: int | None = None) -> torch.Tensor:
    """All images of a processed folder as one (N, 3, H, W) tensor in [-1, 1]."""
    files = image_files(folder)[:limit]
    if not files:
        raise DataError(f"{folder}: no images; run the preprocess stage first")
    return torch.stack([to_tensor(load_rgb(path)) for path in files])


class UnpairedBatches:
    """Random unpaired (photo, painting) batches with random horizontal flips, seeded."""

    def __init__(self, photos: torch.Tensor, paintings: torch.Tensor, batch_size: int, rng: torch.Generator):
        self.photos, self.paintings = photos, paintings
        self.batch_size = batch_size
        self.rng = rng

    def _draw(self, images: torch.Tensor) -> torch.Tensor:
        index = torch.randint(len(images), (self.batch_size,), generator=self.rng)
        batch = images[index]
        flip = torch.rand(self.batch_size, generator=self.rng) < 0.5
        return torch.where(flip[:, None, None, None], batch.flip(-1), batch)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One (photos, paintings) batch."""
        return self._draw(self.photos), self._draw(self.paintings)
