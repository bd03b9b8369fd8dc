import json

import numpy as np
from PIL import Image

from artshift.config import DownloadParams
from artshift.data.paintings import STYLES, generate
from artshift.data.sources import fetch_dataset

SMALL = DownloadParams(crops_per_photo=2, n_paintings=8, painting_size=64)


def test_embedded_counts_manifest_and_determinism(tmp_path):
    first = fetch_dataset(SMALL, seed=0, out_dir=tmp_path / "a")
    again = fetch_dataset(SMALL, seed=0, out_dir=tmp_path / "b")
    other = fetch_dataset(SMALL, seed=1, out_dir=tmp_path / "c")
    assert first["counts"] == {"photos": 18, "paintings": 8}
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["paintings_synthetic"] is True and "synthetic" in manifest["note"]
    assert set(manifest["painting_styles"]) == set(STYLES)
    assert any("grace_hopper" in s for s in manifest["photo_sources"])
    assert first["dataset_sha256"] == again["dataset_sha256"] != other["dataset_sha256"]
    assert Image.open(tmp_path / "a" / "photos" / "astronaut_00.png").mode == "RGB"


def test_every_style_appears_and_styles_differ():
    images = generate(8, 64, seed=0)
    assert sorted({name.split("_")[0] for name, _ in images}) == sorted(STYLES)
    stats = {}
    for name, image in images:
        pixels = np.asarray(image, dtype=np.float64)
        assert pixels.std() > 10, f"{name} is nearly blank"
        stats.setdefault(name.split("_")[0], []).append(pixels.reshape(-1, 3).mean(0))
    # The soft colour fields have no hard edges; the others do.
    edges = {name.split("_")[0]: np.abs(np.diff(np.asarray(img, dtype=float), axis=1)).mean() for name, img in images}
    assert edges["fields"] < min(edges["grid"], edges["splatter"], edges["circles"])
