"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic kernel.

Unlike FID it has an unbiased estimator, so it is the right number for test sets of a few
hundred images; we report mean ± std over random subsets.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / d + 1)³ for all pairs of rows."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two equal-size samples (diagonal terms left out of the within sums)."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(features1: np.ndarray, features2: np.ndarray, n_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID mean and std over ``n_subsets`` random subsets (without replacement) of both sets."""
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(features1)} and {len(features2)}")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(features1[rng.choice(len(features1), size, replace=False)],
                            features2[rng.choice(len(features2), size, replace=False)])
              for _ in range(n_subsets)]
    return float(np.mean(values)), float(np.std(values))
