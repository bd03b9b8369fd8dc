"""The processed images as training and evaluation read them: from disk, as needed.

Training draws an endless unpaired stream (:class:`UnpairedStream`): sample ``i`` is one photo
and one painting, each picked at random, randomly cropped to ``crop_size`` and randomly flipped,
with every draw made from a generator seeded by ``(seed, i)`` alone. A sample therefore does
not depend on which DataLoader worker or which GPU process reads it: a run with 0 or N workers
sees the same data, N processes with batch B see what one process with batch N·B sees, and a
resumed run continues the stream from the sample position saved in its checkpoint. Only the
file list is held in memory, so memory does not grow with the data set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from artshift.errors import DataError
from artshift.images import load_rgb, to_tensor


def image_files(folder: str | Path) -> list[Path]:
    """The PNG files of a processed folder, sorted so every run sees the same order."""
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise DataError(f"{folder}: no images; run the preprocess stage first")
    return files


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The centred ``size``×``size`` square of a (..., H, W) tensor (evaluation's view of an image)."""
    height, width = image.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return image[..., top:top + size, left:left + size]


def _read(files: list[Path], crop_size: int | None) -> torch.Tensor:
    """``files`` as one (N, 3, S, S) tensor in [-1, 1], centre-cropped to ``crop_size`` when given."""
    images = [to_tensor(load_rgb(path)) for path in files]
    return torch.stack([center_crop(image, crop_size) if crop_size else image for image in images])


def load_folder(folder: str | Path, limit: int | None = None, crop_size: int | None = None) -> torch.Tensor:
    """The first ``limit`` images of a processed folder as one (N, 3, S, S) tensor in [-1, 1],
    centre-cropped to ``crop_size`` when given: for the small sets of evaluation and previews."""
    return _read(image_files(folder)[:limit], crop_size)


def iter_folder(folder: str | Path, batch_size: int, crop_size: int | None = None) -> Iterator[torch.Tensor]:
    """The images of a processed folder, ``batch_size`` at a time (centre-cropped to
    ``crop_size`` when given): for statistics over a set too large to hold in memory."""
    files = image_files(folder)
    for start in range(0, len(files), batch_size):
        yield _read(files[start:start + batch_size], crop_size)


class UnpairedStream(Dataset):
    """Sample ``i`` → (photo, painting): random picks, crops and flips seeded by ``(seed, i)``."""

    def __init__(self, photos: list[Path], paintings: list[Path], crop_size: int, seed: int):
        self.photos, self.paintings = photos, paintings
        self.crop_size, self.seed = crop_size, seed

    def __len__(self) -> int:
        return np.iinfo(np.int64).max  # endless: the sampler decides which samples are read

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        return self._draw(self.photos, rng), self._draw(self.paintings, rng)

    def _draw(self, files: list[Path], rng: np.random.Generator) -> torch.Tensor:
        image = to_tensor(load_rgb(files[rng.integers(len(files))]))
        height, width = image.shape[-2:]
        top, left = rng.integers(height - self.crop_size + 1), rng.integers(width - self.crop_size + 1)
        crop = image[:, top:top + self.crop_size, left:left + self.crop_size]
        return crop.flip(-1) if rng.random() < 0.5 else crop


class StreamSampler(Sampler[int]):
    """Sample ids of one process, step after step from ``start_step``: at step ``s`` the
    ``world`` processes together read ids ``s·B·world`` to ``(s+1)·B·world - 1``, process
    ``rank`` the ``B = batch_size`` of them from ``(s·world + rank)·B``."""

    def __init__(self, start_step: int, batch_size: int, rank: int = 0, world: int = 1):
        self.start_step, self.batch_size, self.rank, self.world = start_step, batch_size, rank, world

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1


def unpaired_loader(photos_dir: Path, paintings_dir: Path, crop_size: int, batch_size: int, seed: int,
                    start_step: int = 0, num_workers: int = 0, pin_memory: bool = False, rank: int = 0,
                    world: int = 1) -> DataLoader:
    """Endless (photos, paintings) batches of this process's share of the stream, from
    ``start_step`` on, decoded by ``num_workers`` worker processes (0: in this process)."""
    photos, paintings = image_files(photos_dir), image_files(paintings_dir)
    for folder, files in ((photos_dir, photos), (paintings_dir, paintings)):
        with Image.open(files[0]) as first:
            if min(first.size) < crop_size:
                raise DataError(f"{folder}: images are {first.width}x{first.height}, smaller than the "
                                f"{crop_size} px training crops (train.crop_size or preprocess.load_size); "
                                "re-run the preprocess stage")
    stream = UnpairedStream(photos, paintings, crop_size, seed)
    return DataLoader(stream, batch_size=batch_size, sampler=StreamSampler(start_step, batch_size, rank, world),
                      num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0)
