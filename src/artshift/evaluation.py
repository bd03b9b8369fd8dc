"""Score a trained generator against baselines: FID, KID, content and diversity, per method.

Three sets of images are compared with the test paintings: the model's output, the
unstylised test photos (``identity``) and Reinhard colour transfer (``reinhard``), each scored
with every metric of the registry (:mod:`artshift.metrics.registry`). A translation model is
useful when it is closer to the paintings than both baselines while keeping content well above
0. A generator that takes noise is scored on as many samples as there are test photos, drawn
from seeded noise; it has no content score (its pictures translate no photo). A generator that
takes a style image paints each test photo in a seeded random test painting's style; Reinhard
then matches each photo to that same painting, and every row gets a ``style_distance`` to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artshift.baselines import image_lab_statistics, lab_statistics, reinhard_transfer
from artshift.config import EvaluateParams
from artshift.data.dataset import image_files, iter_folder, load_folder
from artshift.data.layout import processed_folder
from artshift.device import resolve_device
from artshift.generator_io import INPUT_LABELS, GeneratorInput
from artshift.inference import noise, open_generator
from artshift.log import get_logger
from artshift.metrics.checkerboard import checkerboard_share
from artshift.metrics.diversity import mean_pairwise_distance
from artshift.metrics.features import FeatureExtractor, cached
from artshift.metrics.inception import RANDOM_INIT_LABEL
from artshift.metrics.registry import MetricInputs, compute_metrics
from artshift.models.vgg import RANDOM_INIT_LABEL as RANDOM_VGG_LABEL
from artshift.visualize import side_by_side, tile

log = get_logger("evaluate")
CANDIDATES = ("model", "identity", "reinhard")  # the image sets scored, each a key of the report
LAB_BATCH = 256  # training paintings read at a time for the Reinhard baseline's colour statistics
GRID_ROWS = 8
GRID_SAMPLES = 16


@torch.no_grad()
def run_batched(generator: torch.nn.Module, inputs: tuple[torch.Tensor, ...], batch_size: int) -> torch.Tensor:
    """Run the generator (in eval mode, on its device) over its arguments ``inputs`` in batches;
    outputs on the CPU."""
    generator.eval()
    device = next(generator.parameters()).device
    return torch.cat([generator(*(x[i:i + batch_size].to(device) for x in inputs)).cpu()
                      for i in range(0, len(inputs[0]), batch_size)])


def style_pairs(n_photos: int, n_paintings: int, seed: int) -> np.ndarray:
    """The test painting whose style each test photo is given: seeded random indices."""
    return np.random.default_rng(seed).integers(n_paintings, size=n_photos)


def scored_inputs(generator, photos: torch.Tensor, paintings: torch.Tensor, seed: int) -> tuple[torch.Tensor, ...]:
    """The generator's arguments when it is scored (a torch generator or an ONNX runner, by what
    it ``takes``): the test photos; each with a seeded random test painting; or seeded noise,
    one sample per test photo."""
    if generator.takes is GeneratorInput.NOISE:
        return (torch.from_numpy(noise(len(photos), generator.z_dim, seed)),)
    if generator.takes is GeneratorInput.PHOTO_AND_STYLE:
        return photos, paintings[style_pairs(len(photos), len(paintings), seed)]
    return (photos,)


def style_network(generator: torch.nn.Module) -> torch.nn.Module | None:
    """The VGG that a generator taking a style image measures style with (its own frozen
    encoder, so scores use the training loss's features), else None."""
    return generator.encoder if generator.takes is GeneratorInput.PHOTO_AND_STYLE else None


def reinhard_baseline(photos: torch.Tensor, styles: torch.Tensor | None, data_dir: Path,
                      crop_size: int) -> torch.Tensor:
    """Reinhard colour transfer of each photo to its own style image, or (``styles`` None) to the
    training paintings as a whole."""
    if styles is not None:
        return reinhard_transfer(photos, *image_lab_statistics(styles))
    return reinhard_transfer(photos, *lab_statistics(iter_folder(processed_folder(data_dir, "train", "paintings"),
                                                                 LAB_BATCH, crop_size)))


def reference_features(data_dir: Path, extractor: FeatureExtractor, batch_size: int, cache_dir: Path,
                       crop_size: int) -> np.ndarray:
    """Features of the test paintings' centre crops, cached: processed files are named by content
    hash, so their names (and the crop size) identify the reference set."""
    folder = processed_folder(data_dir, "test", "paintings")
    key = [extractor.label, extractor.resize, f"crop {crop_size}", *(p.name for p in image_files(folder))]
    return cached(cache_dir, key, lambda: extractor(load_folder(folder, crop_size=crop_size), batch_size))


def score(candidates: torch.Tensor, photos: torch.Tensor | None, reference, extractor: FeatureExtractor,
          cfg: EvaluateParams, seed: int, styles: torch.Tensor | None = None,
          style_net: torch.nn.Module | None = None) -> dict[str, float]:
    """Every registered metric of ``candidates`` against the ``reference`` features; ``photos``
    are the images they translate (``None`` for samples drawn from noise: no content score);
    ``styles`` the style image each was given, measured with ``style_net`` (None: no style score)."""
    features = extractor(candidates, cfg.batch_size)
    return compute_metrics(MetricInputs(candidates, features, reference, photos, cfg, seed, styles, style_net))


def describe(name: str, scores: dict[str, float]) -> str:
    """One log line for one candidate's scores."""
    return f"{name:<8} " + "  ".join(f"{metric} {value:.4g}" for metric, value in scores.items())


def evaluate(generator: torch.nn.Module, data_dir: Path, extractor: FeatureExtractor, cfg: EvaluateParams,
             seed: int, cache_dir: Path, crop_size: int) -> tuple[dict, Image.Image]:
    """The eval report and a grid: photo | (style |) Reinhard | model for the first test photos,
    or a tile of samples for a generator that takes noise. Test images are centre-cropped to
    ``crop_size`` (the size the generator trained at); the generator and the Inception network
    run on ``evaluate.device``."""
    device = resolve_device(cfg.device, "evaluate.device")
    generator, extractor = generator.to(device), extractor.to(device)
    photos = load_folder(processed_folder(data_dir, "test", "photos"), crop_size=crop_size)
    paintings = load_folder(processed_folder(data_dir, "test", "paintings"), crop_size=crop_size)
    reference = reference_features(data_dir, extractor, cfg.batch_size, cache_dir, crop_size)
    from_noise = generator.takes is GeneratorInput.NOISE
    log.info("scoring %d %s against %d test paintings on %s (%s, resize %s)", len(photos),
             "samples" if from_noise else "test photos", len(reference), device, extractor.label, extractor.resize)

    inputs = scored_inputs(generator, photos, paintings, seed)
    style_net = style_network(generator)
    styles = inputs[1] if style_net is not None else None
    candidates = {"model": run_batched(generator, inputs, cfg.batch_size), "identity": photos,
                  "reinhard": reinhard_baseline(photos, styles, data_dir, crop_size)}
    report: dict = {"feature_extractor": extractor.label, "resize": extractor.resize, "fid_method": cfg.fid_method,
                    "n_photos": len(photos), "n_paintings": len(reference),
                    "paintings_diversity": mean_pairwise_distance(paintings),
                    "paintings_checkerboard": float(checkerboard_share(paintings).mean())}
    if style_net is not None:
        report["style_extractor"] = style_net.label
    for name in CANDIDATES:
        images = candidates[name]
        report[name] = score(images, None if from_noise and name == "model" else photos, reference, extractor, cfg,
                             seed, styles, style_net)
        log.info(describe(name, report[name]))
    if from_noise:
        return report, tile(candidates["model"][:GRID_SAMPLES])
    columns = [*inputs, candidates["reinhard"], candidates["model"]]
    labels = [*INPUT_LABELS[generator.takes], "Reinhard", "model"]
    return report, side_by_side([column[:GRID_ROWS] for column in columns], labels=labels)


def _suffix(report: dict, metric: str) -> str:
    """``_random_init`` for a score measured with random-init features: Inception's, or for
    ``style_distance`` the VGG's."""
    extractor = report.get("style_extractor", "") if metric == "style_distance" else report["feature_extractor"]
    return "_random_init" if extractor.startswith((RANDOM_INIT_LABEL, RANDOM_VGG_LABEL)) else ""


def tracked_metrics(report: dict) -> dict[str, float]:
    """The report's numbers as MLflow metric names, ``eval/<candidate>/<metric>``. Scores from
    random-init features get a ``_random_init`` suffix, so that nobody compares them with
    published FIDs (or with style distances measured on the pretrained VGG)."""
    return {f"eval/{name}/{metric}{_suffix(report, metric)}": value
            for name in CANDIDATES for metric, value in report[name].items()} | {
        "eval/paintings_diversity": report["paintings_diversity"],
        "eval/paintings_checkerboard": report["paintings_checkerboard"]}


def score_onnx_models(paths: dict[str, Path], data_dir: Path, extractor: FeatureExtractor, cfg: EvaluateParams,
                      seed: int, cache_dir: Path, crop_size: int,
                      style_net: torch.nn.Module | None = None) -> dict[str, dict[str, float]]:
    """Every registered metric of each exported model (run by ONNX Runtime on the CPU), on the
    inputs ``evaluate`` scores (:func:`scored_inputs`: test photos centre-cropped to
    ``crop_size``, each with its style image, or seeded noise); ``style_net`` measures the style
    of a photo-and-style model (:func:`style_network` of the torch generator).

    Shows what a precision change (fp16, int8) costs in quality, measured like ``evaluate``.
    """
    extractor = extractor.to(resolve_device(cfg.device, "evaluate.device"))
    photos = load_folder(processed_folder(data_dir, "test", "photos"), crop_size=crop_size)
    paintings = load_folder(processed_folder(data_dir, "test", "paintings"), crop_size=crop_size)
    reference = reference_features(data_dir, extractor, cfg.batch_size, cache_dir, crop_size)
    scores = {}
    for name, path in paths.items():
        model = open_generator(path, providers=["CPUExecutionProvider"])
        inputs = [x.numpy() for x in scored_inputs(model, photos, paintings, seed)]
        outputs = np.concatenate([model.run_array(*(x[i:i + cfg.batch_size] for x in inputs))
                                  for i in range(0, len(inputs[0]), cfg.batch_size)])
        content_of = None if model.takes is GeneratorInput.NOISE else photos
        styles = torch.from_numpy(inputs[1]) if model.takes is GeneratorInput.PHOTO_AND_STYLE else None
        scores[name] = score(torch.from_numpy(outputs), content_of, reference, extractor, cfg, seed, styles, style_net)
        log.info(describe(name, scores[name]))
    return scores
