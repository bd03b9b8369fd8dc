import numpy as np
import pytest
from scipy import linalg

from artshift.metrics.fid import METHODS, feature_statistics, fid_from_features, frechet_distance

pytorch_fid_score = pytest.importorskip("pytorch_fid.fid_score")


def reference_frechet(mu1, s1, mu2, s2):
    """Textbook formula with scipy's sqrtm, no special cases."""
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


def _gaussians(n1, n2, dim, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n1, dim))
    b = rng.normal(1.0, 2.0, size=(n2, dim)) @ rng.normal(size=(dim, dim))
    return (*feature_statistics(a), *feature_statistics(b))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n1", "n2", "dim"), [(400, 300, 8), (300, 300, 64), (20, 25, 64)])
def test_equals_pytorch_fid(method, n1, n2, dim):
    stats = _gaussians(n1, n2, dim, seed=dim + n1)  # (20, 25, 64): rank-deficient covariances
    expected = pytorch_fid_score.calculate_frechet_distance(*stats)
    assert frechet_distance(*stats, method=method) == pytest.approx(expected, rel=1e-6)


def test_matches_textbook_formula():
    stats = _gaussians(400, 300, 8, seed=0)
    assert frechet_distance(*stats) == pytest.approx(reference_frechet(*stats), rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_diagonal_closed_form(method):
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2), method=method) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_identical_sets_are_zero_and_rank_deficient_is_finite(method):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 32))  # fewer samples than dimensions: singular covariance
    assert abs(fid_from_features(x, x, method=method)) < 1e-6
    value = fid_from_features(x, rng.normal(size=(10, 32)), method=method)
    assert np.isfinite(value) and value > 0


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")
