"""The embedded data set: real photographs that ship inside installed PyPI packages.

Nine photographs are found by path inside scikit-image, scikit-learn and matplotlib (no network,
and no import of those heavy packages) and cut into seeded random crops, so the offline default
run has a photo domain with some variety.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from artshift.errors import DataError

# (import name, distribution name, path inside the package, short name)
BUNDLED_PHOTOS = [
    ("skimage", "scikit-image", "data/astronaut.png", "astronaut"),
    ("skimage", "scikit-image", "data/chelsea.png", "chelsea"),
    ("skimage", "scikit-image", "data/coffee.png", "coffee"),
    ("skimage", "scikit-image", "data/motorcycle_left.png", "motorcycle_left"),
    ("skimage", "scikit-image", "data/motorcycle_right.png", "motorcycle_right"),
    ("skimage", "scikit-image", "data/rocket.jpg", "rocket"),
    ("sklearn", "scikit-learn", "datasets/images/china.jpg", "china"),
    ("sklearn", "scikit-learn", "datasets/images/flower.jpg", "flower"),
    ("matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "grace_hopper"),
]
CROP_FRACTION = (0.45, 0.9)  # crop side as a fraction of the photo's shorter side


def package_file(package: str, relative: str) -> Path:
    """Absolute path of a data file inside an installed package, found without importing it.

    Raises :class:`DataError` when the package or the file is missing, so a broken install
    reads as one line instead of a traceback.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"embedded data: package {package!r} is not installed (pip install -e .)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"embedded data: {path} is missing from the installed {package}")
    return path


def random_crops(image: Image.Image, count: int, rng: np.random.Generator) -> Iterator[Image.Image]:
    """Yield ``count`` square crops of random size (45-90% of the shorter side) and position.

    Several crops per photograph give the photo domain more samples and some variety in scale.
    """
    width, height = image.size
    short = min(width, height)
    for _ in range(count):
        side = int(short * rng.uniform(*CROP_FRACTION))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        yield image.crop((left, top, left + side, top + side))


def photo_crops(crops_per_photo: int, seed: int) -> Iterator[tuple[str, Image.Image]]:
    """Yield named RGB crops of every bundled photograph, e.g. ``("astronaut_03", image)``.

    One generator on its own stream of ``seed`` (independent of the paintings) draws all crops
    in a fixed order, so the crops are a pure function of ``(crops_per_photo, seed)``.
    """
    rng = np.random.default_rng([seed, 0])
    for package, _, relative, name in BUNDLED_PHOTOS:
        with Image.open(package_file(package, relative)) as photo:
            rgb = photo.convert("RGB")
        for index, crop in enumerate(random_crops(rgb, crops_per_photo, rng)):
            yield f"{name}_{index:02d}", crop


def photo_sources() -> list[str]:
    """Where each photograph comes from (distribution, version, file), for the manifest."""
    return [f"{dist} {importlib.metadata.version(dist)}: {package}/{relative}"
            for package, dist, relative, _ in BUNDLED_PHOTOS]
