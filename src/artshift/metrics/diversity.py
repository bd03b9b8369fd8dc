"""Sample diversity: the mode-collapse signal watched during training.

A collapsing generator draws nearly the same picture whatever its input, so the mean distance
between its samples falls far below the mean distance between real paintings.
"""

from __future__ import annotations

import math

import torch


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean over all pairs i ≠ j of the RMS pixel difference of (N, C, H, W) images; N ≥ 2."""
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to measure diversity, got {len(images)}")
    flat = images.flatten(1).double()
    distances = torch.cdist(flat, flat) / math.sqrt(flat.shape[1])
    return float(distances.sum() / (len(flat) * (len(flat) - 1)))


def collapse_warning(samples: float, reference: float, ratio: float) -> str | None:
    """A warning line when sample diversity is below ``ratio`` × the real images' diversity."""
    if reference <= 0 or samples >= ratio * reference:
        return None
    return (f"possible mode collapse: sample diversity {samples:.4f} is {samples / reference:.0%} of the "
            f"paintings' {reference:.4f} (warning below {ratio:.0%})")
