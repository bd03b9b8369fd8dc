"""Fréchet distance between two Gaussians fitted to feature sets (the "F" of FID).

Pure functions of arrays. d² = |mu1 - mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½). Only the trace of the
matrix square root is needed, and two ways to get it are offered:

- ``sqrtm``: pytorch-fid's numerics exactly — ``scipy.linalg.sqrtm`` of the product, a small
  diagonal offset when that product is singular, and a check that any imaginary part is noise.
- ``eigh`` (default): the eigenvalues of S1 S2 equal those of the symmetric PSD matrix
  S1^½ S2 S1^½, so the trace is Σ √λ from two symmetric eigendecompositions: the same number
  (the tests compare it with pytorch-fid) from cheaper symmetric solvers, with no complex
  arithmetic to check. The README's benchmark table has the timings.
"""

from __future__ import annotations

import warnings
from typing import get_args

import numpy as np
from scipy import linalg

from artshift.choices import FidMethod

METHODS: tuple[str, ...] = get_args(FidMethod)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and (unbiased) covariance matrix of an (N, D) feature array, N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need an (N, D) array with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _trace_sqrt_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    values, vectors = linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    product_eigenvalues = linalg.eigvalsh(root1 @ sigma2 @ root1)
    return float(np.sqrt(np.clip(product_eigenvalues, 0, None)).sum())


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # A singular product is expected with few samples and handled by the caller.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def _trace_sqrt_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        # Singular product (e.g. fewer samples than dimensions): regularise both sides.
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm is not numerical noise")
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, method: str = "eigh") -> float:
    """d² between N(mu1, sigma1) and N(mu2, sigma2); ``method`` picks how Tr (S1 S2)^½ is found."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {sigma1.shape} vs {sigma2.shape}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    trace_sqrt = _trace_sqrt_eigh(sigma1, sigma2) if method == "eigh" else _trace_sqrt_sqrtm(sigma1, sigma2, eps)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid_from_features(features1: np.ndarray, features2: np.ndarray, method: str = "eigh") -> float:
    """FID between two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2), method=method)
