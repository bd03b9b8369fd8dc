"""The embedded data set: real photographs that ship inside pinned PyPI packages.

Nine photographs are found by path inside scikit-image, scikit-learn and matplotlib (no network,
no import of those heavy packages) and cut into seeded random crops, so the offline default run
has a photo domain with some variety.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from artshift.errors import DataError

# (package, path inside the package, name)
BUNDLED_PHOTOS = [
    ("skimage", "data/astronaut.png", "astronaut"),
    ("skimage", "data/chelsea.png", "chelsea"),
    ("skimage", "data/coffee.png", "coffee"),
    ("skimage", "data/motorcycle_left.png", "motorcycle_left"),
    ("skimage", "data/motorcycle_right.png", "motorcycle_right"),
    ("skimage", "data/rocket.jpg", "rocket"),
    ("sklearn", "datasets/images/china.jpg", "china"),
    ("sklearn", "datasets/images/flower.jpg", "flower"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "grace_hopper"),
]
CROP_FRACTION = (0.45, 0.9)  # crop side as a fraction of the photo's shorter side


def package_file(package: str, relative: str) -> Path:
    """Absolute path of a data file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"embedded data: package {package!r} is not installed (pip install -e .)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"embedded data: {path} is missing from the installed {package}")
    return path


def random_crops(image: Image.Image, count: int, rng: np.random.Generator) -> list[Image.Image]:
    """``count`` square crops of random size and position."""
    width, height = image.size
    short = min(width, height)
    crops = []
    for _ in range(count):
        side = int(short * rng.uniform(*CROP_FRACTION))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        crops.append(image.crop((left, top, left + side, top + side)))
    return crops


def photo_crops(crops_per_photo: int, seed: int) -> list[tuple[str, Image.Image]]:
    """Named crops of every bundled photograph, e.g. ``("astronaut_03", image)``."""
    rng = np.random.default_rng([seed, 0])  # stream 0: independent of the paintings
    out = []
    for package, relative, name in BUNDLED_PHOTOS:
        with Image.open(package_file(package, relative)) as photo:
            rgb = photo.convert("RGB")
        out += [(f"{name}_{i:02d}", crop) for i, crop in enumerate(random_crops(rgb, crops_per_photo, rng))]
    return out


def photo_sources() -> list[str]:
    """Where the photographs come from, for the manifest."""
    return [f"{package}:{relative}" for package, relative, _ in BUNDLED_PHOTOS]
