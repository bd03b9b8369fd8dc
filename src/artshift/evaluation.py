"""Score a trained generator against baselines: FID, KID and content, per method.

Three sets of test photos are compared with the test paintings: the model's output, the
unstylised photos (``identity``) and Reinhard colour transfer (``reinhard``). A model is useful
when it is closer to the paintings than both baselines while keeping content well above 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artshift.baselines import lab_statistics, reinhard_transfer
from artshift.config import EvaluateParams
from artshift.data.dataset import image_files, load_folder
from artshift.inference import Stylizer
from artshift.log import get_logger
from artshift.metrics.content import content_score
from artshift.metrics.features import FeatureExtractor, cached
from artshift.metrics.fid import fid_from_features
from artshift.metrics.kid import kernel_inception_distance
from artshift.visualize import side_by_side

log = get_logger("evaluate")
GRID_ROWS = 8


@torch.no_grad()
def translate(generator: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Run the generator over ``images`` in batches."""
    generator.eval()
    return torch.cat([generator(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def reference_features(data_dir: Path, extractor: FeatureExtractor, batch_size: int, cache_dir: Path) -> np.ndarray:
    """Features of the test paintings, cached: processed files are named by content hash, so
    their names identify the reference set."""
    folder = data_dir / "test" / "paintings"
    key = [extractor.label, extractor.resize, *(p.name for p in image_files(folder))]
    return cached(cache_dir, key, lambda: extractor(load_folder(folder), batch_size))


def score(candidates: torch.Tensor, photos: torch.Tensor, reference, extractor: FeatureExtractor,
          cfg: EvaluateParams, seed: int) -> dict[str, float]:
    """FID, KID (mean ± std) and content of ``candidates`` (translations of ``photos``)."""
    features = extractor(candidates, cfg.batch_size)
    kid_mean, kid_std = kernel_inception_distance(features, reference, cfg.kid_subsets, cfg.kid_subset_size, seed)
    return {"fid": fid_from_features(features, reference, cfg.fid_method), "kid_mean": kid_mean, "kid_std": kid_std,
            "content": content_score(photos, candidates)}


def evaluate(generator: torch.nn.Module, data_dir: Path, extractor: FeatureExtractor, cfg: EvaluateParams,
             seed: int, cache_dir: Path) -> tuple[dict, Image.Image]:
    """The eval report and a grid (photo | Reinhard | model) of the first test photos."""
    photos = load_folder(data_dir / "test" / "photos")
    reference = reference_features(data_dir, extractor, cfg.batch_size, cache_dir)
    log.info("scoring %d test photos against %d test paintings (%s, resize %s)",
             len(photos), len(reference), extractor.label, extractor.resize)

    candidates = {
        "model": translate(generator, photos, cfg.batch_size),
        "identity": photos,
        "reinhard": reinhard_transfer(photos, *lab_statistics(load_folder(data_dir / "train" / "paintings"))),
    }
    report: dict = {"feature_extractor": extractor.label, "resize": extractor.resize, "fid_method": cfg.fid_method,
                    "n_photos": len(photos), "n_paintings": len(reference)}
    for name, images in candidates.items():
        report[name] = score(images, photos, reference, extractor, cfg, seed)
        log.info("%-8s FID %.3f  KID %.5f ± %.5f  content %.3f", name, *report[name].values())
    grid = side_by_side([photos[:GRID_ROWS], candidates["reinhard"][:GRID_ROWS], candidates["model"][:GRID_ROWS]])
    return report, grid


def score_onnx_models(paths: dict[str, Path], data_dir: Path, extractor: FeatureExtractor, cfg: EvaluateParams,
                      seed: int, cache_dir: Path) -> dict[str, dict[str, float]]:
    """FID/KID/content of each exported model (run by ONNX Runtime on the CPU) on the test photos.

    Shows what a precision change (fp16, int8) costs in quality, measured like ``evaluate``.
    """
    photos = load_folder(data_dir / "test" / "photos")
    reference = reference_features(data_dir, extractor, cfg.batch_size, cache_dir)
    scores = {}
    for name, path in paths.items():
        stylizer = Stylizer(path, providers=["CPUExecutionProvider"])
        outputs = np.concatenate([stylizer.run_array(photos[i:i + cfg.batch_size].numpy())
                                  for i in range(0, len(photos), cfg.batch_size)])
        scores[name] = score(torch.from_numpy(outputs), photos, reference, extractor, cfg, seed)
        log.info("%-5s FID %.3f  KID %.5f ± %.5f  content %.3f", name, *scores[name].values())
    return scores
