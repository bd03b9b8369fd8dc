"""The metric registry: name → function, in the spirit of stylegan2-ada's ``metric_main.py``.

Every registered metric takes one :class:`MetricInputs` (the images scored, their Inception
features, the reference paintings' features, the photos they translate and, for a generator
that takes a style image, those style images and the VGG that measures style) and returns named
numbers. ``evaluate`` and ``export`` compute all of them through :func:`compute_metrics`, so a
new metric is one pure function in ``artshift/metrics/`` and one line in :data:`METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from artshift.config import EvaluateParams
from artshift.metrics.checkerboard import checkerboard_scores
from artshift.metrics.content import content_score
from artshift.metrics.diversity import mean_pairwise_distance
from artshift.metrics.fid import fid_from_features
from artshift.metrics.kid import kernel_inception_distance
from artshift.metrics.style import mean_style_distance


@dataclass(frozen=True)
class MetricInputs:
    """What a metric may look at for one set of candidate images."""

    images: torch.Tensor  # (N, 3, H, W) in [-1, 1]: the images being scored
    features: np.ndarray  # (N, D) their Inception features
    reference: np.ndarray  # (M, D) the test paintings' Inception features
    photos: torch.Tensor | None  # the photos ``images`` translate; None for samples drawn from noise
    cfg: EvaluateParams
    seed: int
    styles: torch.Tensor | None = None  # the style image each image was to take (photo-and-style generators)
    style_network: torch.nn.Module | None = None  # the VGG encoder their style is measured with


METRICS: dict[str, Callable[[MetricInputs], dict[str, float]]] = {
    "fid": lambda m: {"fid": fid_from_features(m.features, m.reference, m.cfg.fid_method)},
    "kid": lambda m: dict(zip(("kid_mean", "kid_std"), kernel_inception_distance(
        m.features, m.reference, m.cfg.kid_subsets, m.cfg.kid_subset_size, m.seed))),
    "diversity": lambda m: {"diversity": mean_pairwise_distance(m.images)},
    "content": lambda m: {} if m.photos is None else {"content": content_score(m.photos, m.images)},
    "checkerboard": lambda m: checkerboard_scores(m.images, m.photos),
    "style": lambda m: {} if m.styles is None else {
        "style_distance": mean_style_distance(m.style_network, m.images, m.styles, m.cfg.batch_size)},
}


def compute_metrics(inputs: MetricInputs) -> dict[str, float]:
    """Every registered metric's numbers for one set of candidate images."""
    return {key: value for metric in METRICS.values() for key, value in metric(inputs).items()}
