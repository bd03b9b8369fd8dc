"""Score a trained generator against baselines: FID, KID, content and diversity, per method.

Three sets of images are compared with the test paintings: the model's output, the
unstylised test photos (``identity``) and Reinhard colour transfer (``reinhard``), each scored
with every metric of the registry (:mod:`artshift.metrics.registry`). A translation model is
useful when it is closer to the paintings than both baselines while keeping content well above
0. A generator that takes noise is scored on as many samples as there are test photos, drawn
from seeded noise; it has no content score (its pictures translate no photo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artshift.baselines import lab_statistics, reinhard_transfer
from artshift.config import EvaluateParams
from artshift.data.dataset import image_files, iter_folder, load_folder
from artshift.data.layout import processed_folder
from artshift.device import resolve_device
from artshift.generator_io import GeneratorInput
from artshift.inference import noise, open_generator
from artshift.log import get_logger
from artshift.metrics.diversity import mean_pairwise_distance
from artshift.metrics.features import FeatureExtractor, cached
from artshift.metrics.inception import RANDOM_INIT_LABEL
from artshift.metrics.registry import MetricInputs, compute_metrics
from artshift.visualize import side_by_side, tile

log = get_logger("evaluate")
CANDIDATES = ("model", "identity", "reinhard")  # the image sets scored, each a key of the report
LAB_BATCH = 256  # training paintings read at a time for the Reinhard baseline's colour statistics
GRID_ROWS = 8
GRID_LABELS = ["photo", "Reinhard", "model"]  # drawn over the grid's columns
GRID_SAMPLES = 16


@torch.no_grad()
def run_batched(generator: torch.nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Run the generator (in eval mode, on its device) over ``inputs`` in batches; outputs on the CPU."""
    generator.eval()
    device = next(generator.parameters()).device
    return torch.cat([generator(inputs[i:i + batch_size].to(device)).cpu() for i in range(0, len(inputs), batch_size)])


def reference_features(data_dir: Path, extractor: FeatureExtractor, batch_size: int, cache_dir: Path,
                       crop_size: int) -> np.ndarray:
    """Features of the test paintings' centre crops, cached: processed files are named by content
    hash, so their names (and the crop size) identify the reference set."""
    folder = processed_folder(data_dir, "test", "paintings")
    key = [extractor.label, extractor.resize, f"crop {crop_size}", *(p.name for p in image_files(folder))]
    return cached(cache_dir, key, lambda: extractor(load_folder(folder, crop_size=crop_size), batch_size))


def score(candidates: torch.Tensor, photos: torch.Tensor | None, reference, extractor: FeatureExtractor,
          cfg: EvaluateParams, seed: int) -> dict[str, float]:
    """Every registered metric of ``candidates`` against the ``reference`` features; ``photos``
    are the images they translate (``None`` for samples drawn from noise: no content score)."""
    features = extractor(candidates, cfg.batch_size)
    return compute_metrics(MetricInputs(candidates, features, reference, photos, cfg, seed))


def describe(name: str, scores: dict[str, float]) -> str:
    """One log line for one candidate's scores."""
    return f"{name:<8} " + "  ".join(f"{metric} {value:.4g}" for metric, value in scores.items())


def evaluate(generator: torch.nn.Module, data_dir: Path, extractor: FeatureExtractor, cfg: EvaluateParams,
             seed: int, cache_dir: Path, crop_size: int) -> tuple[dict, Image.Image]:
    """The eval report and a grid: photo | Reinhard | model for the first test photos, or a
    tile of samples for a generator that takes noise. Test images are centre-cropped to
    ``crop_size`` (the size the generator trained at); the generator and the Inception network
    run on ``evaluate.device``."""
    device = resolve_device(cfg.device, "evaluate.device")
    generator, extractor = generator.to(device), extractor.to(device)
    photos = load_folder(processed_folder(data_dir, "test", "photos"), crop_size=crop_size)
    reference = reference_features(data_dir, extractor, cfg.batch_size, cache_dir, crop_size)
    from_noise = generator.takes is GeneratorInput.NOISE
    log.info("scoring %d %s against %d test paintings on %s (%s, resize %s)", len(photos),
             "samples" if from_noise else "test photos", len(reference), device, extractor.label, extractor.resize)

    inputs = torch.from_numpy(noise(len(photos), generator.z_dim, seed)) if from_noise else photos
    candidates = {
        "model": run_batched(generator, inputs, cfg.batch_size),
        "identity": photos,
        "reinhard": reinhard_transfer(photos, *lab_statistics(iter_folder(
            processed_folder(data_dir, "train", "paintings"), LAB_BATCH, crop_size))),
    }
    report: dict = {"feature_extractor": extractor.label, "resize": extractor.resize, "fid_method": cfg.fid_method,
                    "n_photos": len(photos), "n_paintings": len(reference),
                    "paintings_diversity": mean_pairwise_distance(load_folder(processed_folder(data_dir, "test",
                                                                                                 "paintings"),
                                                                              crop_size=crop_size))}
    for name in CANDIDATES:
        images = candidates[name]
        report[name] = score(images, None if from_noise and name == "model" else photos, reference, extractor, cfg,
                             seed)
        log.info(describe(name, report[name]))
    if from_noise:
        return report, tile(candidates["model"][:GRID_SAMPLES])
    grid = side_by_side([photos[:GRID_ROWS], candidates["reinhard"][:GRID_ROWS], candidates["model"][:GRID_ROWS]],
                        labels=GRID_LABELS)
    return report, grid


def tracked_metrics(report: dict) -> dict[str, float]:
    """The report's numbers as MLflow metric names, ``eval/<candidate>/<metric>``. Scores from
    random-init Inception features get a ``_random_init`` suffix, so that nobody compares them
    with published FIDs."""
    suffix = "_random_init" if report["feature_extractor"].startswith(RANDOM_INIT_LABEL) else ""
    return {f"eval/{name}/{metric}{suffix}": value for name in CANDIDATES for metric, value in report[name].items()} | {
        "eval/paintings_diversity": report["paintings_diversity"]}


def score_onnx_models(paths: dict[str, Path], data_dir: Path, extractor: FeatureExtractor, cfg: EvaluateParams,
                      seed: int, cache_dir: Path, crop_size: int) -> dict[str, dict[str, float]]:
    """Every registered metric of each exported model (run by ONNX Runtime on the CPU), on the test
    photos (centre-cropped to ``crop_size``) or, for a generator of noise, on the same seeded
    samples ``evaluate`` scores.

    Shows what a precision change (fp16, int8) costs in quality, measured like ``evaluate``.
    """
    extractor = extractor.to(resolve_device(cfg.device, "evaluate.device"))
    photos = load_folder(processed_folder(data_dir, "test", "photos"), crop_size=crop_size)
    reference = reference_features(data_dir, extractor, cfg.batch_size, cache_dir, crop_size)
    scores = {}
    for name, path in paths.items():
        model = open_generator(path, providers=["CPUExecutionProvider"])
        from_noise = model.takes is GeneratorInput.NOISE
        inputs = noise(len(photos), model.z_dim, seed) if from_noise else photos.numpy()
        outputs = np.concatenate([model.run_array(inputs[i:i + cfg.batch_size])
                                  for i in range(0, len(inputs), cfg.batch_size)])
        content_of = None if from_noise else photos
        scores[name] = score(torch.from_numpy(outputs), content_of, reference, extractor, cfg, seed)
        log.info(describe(name, scores[name]))
    return scores
