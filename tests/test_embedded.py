"""The offline embedded source: bundled photo crops and procedural paintings."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artshift.config import DownloadParams
from artshift.data.embedded import BUNDLED_PHOTOS, CROP_FRACTION, package_file, photo_crops
from artshift.data.paintings import STYLES, generate
from artshift.data.sources import fetch_dataset
from artshift.errors import DataError

SMALL = DownloadParams(crops_per_photo=2, n_paintings=8, painting_size=64)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """The embedded data set for seeds 0, 0 again and 1."""
    root = tmp_path_factory.mktemp("embedded")
    return {label: (root / label, fetch_dataset(SMALL, seed=seed, out_dir=root / label,
                                                   downloads_dir=root / "downloads"))
            for label, seed in (("a", 0), ("again", 0), ("other", 1))}


def test_counts_and_names(built):
    folder, summary = built["a"]
    assert summary["counts"] == {"photos": 2 * len(BUNDLED_PHOTOS), "paintings": 8}
    assert (folder / "photos" / "astronaut_01.png").is_file() and (folder / "paintings" / "grid_0004.png").is_file()
    assert Image.open(folder / "photos" / "grace_hopper_00.png").mode == "RGB"
    assert not (folder.parent / "downloads").exists()


def test_manifest_says_paintings_are_synthetic(built):
    folder, summary = built["a"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"] == "embedded" and manifest["seed"] == 0
    assert manifest["paintings_synthetic"] is True and summary["paintings_synthetic"] is True
    assert "synthetic" in manifest["note"]
    assert manifest["painting_styles"] == list(STYLES)
    assert len(manifest["photo_sources"]) == len(BUNDLED_PHOTOS)
    assert any("matplotlib" in s and "grace_hopper.jpg" in s for s in manifest["photo_sources"])
    assert manifest["dataset_sha256"] == summary["dataset_sha256"]


def test_same_seed_identical_bytes_other_seed_differs(built):
    same, again, other = (_files(built[label][0]) for label in ("a", "again", "other"))
    assert same == again
    assert same.keys() == other.keys()
    for domain in ("photos/", "paintings/"):
        assert all(same[k] != other[k] for k in same if k.startswith(domain)), domain
    assert built["a"][1]["dataset_sha256"] == built["again"][1]["dataset_sha256"] != built["other"][1]["dataset_sha256"]


def test_crops_are_square_and_sized_within_the_range():
    with Image.open(package_file("skimage", "data/chelsea.png")) as photo:
        short = min(photo.size)
    crops = [image for name, image in photo_crops(3, seed=0) if name.startswith("chelsea_")]
    assert len(crops) == 3
    for crop in crops:
        assert crop.width == crop.height
        assert CROP_FRACTION[0] * short - 1 <= crop.width <= CROP_FRACTION[1] * short


def test_missing_package_is_a_data_error():
    with pytest.raises(DataError, match="not installed"):
        package_file("no_such_package_artshift", "x.png")


def _signature(image: Image.Image) -> str:
    """Tell the styles apart by what defines them, without knowing their names."""
    pixels = np.asarray(image)
    n_colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    dark = pixels.max(axis=2) < 40
    spanning_line = bool(dark.all(axis=0).any() or dark.all(axis=1).any())
    if n_colours > 200:
        return "fields"  # blurred and mottled: hundreds of colours
    if n_colours > 8:
        return "circles"  # translucent overlaps mix colours
    return "grid" if spanning_line else "splatter"  # flat palettes; only the grid has full-length black lines


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_style_appears_evenly_and_is_recognisable(seed):
    images = list(generate(16, 64, seed=seed))
    styles = [name.rsplit("_", 1)[0] for name, _ in images]
    assert {style: styles.count(style) for style in STYLES} == {style: 4 for style in STYLES}
    for (name, image), style in zip(images, styles):
        assert image.size == (64, 64) and image.mode == "RGB"
        assert np.asarray(image, dtype=float).std() > 10, f"{name} is nearly blank"
        assert _signature(image) == style, name


def test_fields_are_the_soft_edged_style():
    edges: dict[str, list[float]] = {}
    for name, image in generate(16, 64, seed=0):
        strength = float(np.abs(np.diff(np.asarray(image, dtype=float), axis=1)).mean())
        edges.setdefault(name.rsplit("_", 1)[0], []).append(strength)
    assert max(edges.pop("fields")) < min(min(values) for values in edges.values())


def test_each_style_is_a_pure_function_of_the_generator():
    for style, paint in STYLES.items():
        first, second = (np.asarray(paint(np.random.default_rng(7), 48)) for _ in range(2))
        assert np.array_equal(first, second), style
