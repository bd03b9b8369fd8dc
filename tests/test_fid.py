import numpy as np
import pytest
import torch
from scipy import linalg

from artshift.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from artshift.metrics.inception import build_inception, extract_features, random_state_dict


def reference_frechet(mu1, s1, mu2, s2):
    """Textbook formula with scipy's sqrtm, no special cases."""
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


def test_matches_scipy_reference_on_random_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(1.0, 2.0, size=(300, 8)) @ rng.normal(size=(8, 8))
    stats = (*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance(*stats) == pytest.approx(reference_frechet(*stats), rel=1e-9)


def test_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_identical_sets_are_zero_and_rank_deficient_is_finite():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 32))  # fewer samples than dimensions: singular covariance
    assert abs(fid_from_features(x, x)) < 1e-6
    value = fid_from_features(x, rng.normal(size=(10, 32)))
    assert np.isfinite(value) and value > 0


def test_statistics_reject_too_few_samples():
    with pytest.raises(ValueError):
        feature_statistics(np.zeros((1, 4)))


def test_random_init_inception_features_are_alive_and_rank_shift():
    torch.manual_seed(0)
    model = build_inception(random_state_dict(seed=0))
    base = torch.rand(24, 3, 32, 32) * 2 - 1
    other = torch.rand(24, 3, 32, 32) * 2 - 1
    shifted = (torch.rand(24, 3, 32, 32) * 0.5 + 0.5).clamp(-1, 1)
    f_base, f_other, f_shift = (extract_features(model, x, 12) for x in (base, other, shifted))
    assert f_base.shape == (24, 2048)
    assert f_base.std(axis=0).mean() > 1e-4 and np.abs(f_base).mean() > 1e-2
    assert fid_from_features(f_base, f_shift) > 3 * fid_from_features(f_base, f_other)
