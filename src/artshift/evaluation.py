"""Score a trained generator: FID of stylised test photos against test paintings.

The identity baseline (the unstylised photos) gives the number its meaning: a useful model
moves the photos closer to the paintings, i.e. its FID is below the identity FID.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from artshift.data.dataset import load_folder
from artshift.log import get_logger
from artshift.metrics.fid import fid_from_features
from artshift.metrics.inception import RANDOM_INIT_LABEL, build_inception, extract_features, random_state_dict
from artshift.visualize import side_by_side

log = get_logger("evaluate")
GRID_ROWS = 8


@torch.no_grad()
def translate(generator: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Run the generator over ``images`` in batches."""
    generator.eval()
    return torch.cat([generator(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def evaluate(generator: torch.nn.Module, data_dir: Path, batch_size: int, seed: int) -> tuple[dict, Image.Image]:
    """The eval report (``model`` and ``identity`` FID, counts, feature extractor) and a grid."""
    photos = load_folder(data_dir / "test" / "photos")
    paintings = load_folder(data_dir / "test" / "paintings")
    log.info("scoring %d test photos against %d test paintings", len(photos), len(paintings))
    stylized = translate(generator, photos, batch_size)

    # The standard FID weights cannot be fetched offline: seeded random weights, clearly labelled.
    extractor = build_inception(random_state_dict(seed))
    label = f"{RANDOM_INIT_LABEL} (seed {seed}, kaiming normal)"
    log.warning("feature extractor: %s; FIDs are NOT comparable with published numbers", label)
    reference = extract_features(extractor, paintings, batch_size)
    report = {
        "feature_extractor": label,
        "n_photos": len(photos),
        "n_paintings": len(paintings),
        "model": {"fid": fid_from_features(extract_features(extractor, stylized, batch_size), reference)},
        "identity": {"fid": fid_from_features(extract_features(extractor, photos, batch_size), reference)},
    }
    log.info("FID model %.4f vs identity %.4f", report["model"]["fid"], report["identity"]["fid"])
    grid = side_by_side([photos[:GRID_ROWS], stylized[:GRID_ROWS]])
    return report, grid
