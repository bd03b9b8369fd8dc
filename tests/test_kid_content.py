import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from artshift.baselines import _to_lab, image_lab_statistics, lab_statistics, reinhard_transfer
from artshift.metrics.content import content_score, grayscale, ssim
from artshift.metrics.kid import kernel_inception_distance, mmd2_unbiased


def direct_mmd2(x, y):
    """The unbiased estimator written as explicit loops over pairs."""
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd2_equals_direct_implementation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    assert mmd2_unbiased(x, y) == pytest.approx(direct_mmd2(x, y), rel=1e-10)


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    mean, std = kernel_inception_distance(a, b, n_subsets=20, subset_size=100)
    assert abs(mean) < 3 * std + 1e-3
    shifted, _ = kernel_inception_distance(a, b + 1.0, n_subsets=20, subset_size=100)
    assert shifted > 10 * max(abs(mean), 1e-3)


def test_kid_rejects_tiny_sets():
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 4)), np.zeros((5, 4)))


def test_ssim_matches_skimage():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(40, 48))
    y = np.clip(x + rng.normal(0, 0.1, size=x.shape), 0, 1)
    expected = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    # skimage's Gaussian filter (sigma 1.5, truncated at 3.5 sigma) is 11 taps wide, and it
    # averages only where the window fits: the same definition as ours.
    got = ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None], window=11)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_content_score_identity_is_one_and_noise_is_low():
    torch.manual_seed(0)
    photos = torch.rand(3, 3, 32, 32) * 2 - 1
    assert content_score(photos, photos) == pytest.approx(1.0)
    assert content_score(photos, torch.rand(3, 3, 32, 32) * 2 - 1) < 0.2
    assert grayscale(torch.ones(1, 3, 4, 4)).allclose(torch.ones(1, 1, 4, 4))


def test_reinhard_matches_target_lab_statistics():
    torch.manual_seed(0)
    photos = torch.rand(2, 3, 24, 24) * 0.5 - 0.5       # dark
    paintings = torch.rand(4, 3, 24, 24) * 0.6 + 0.3    # bright
    mean, std = lab_statistics(paintings)
    out = reinhard_transfer(photos, mean, std)
    assert out.shape == photos.shape and out.min() >= -1 and out.max() <= 1
    got_mean, _ = lab_statistics(out[:1])
    assert np.allclose(got_mean, mean, atol=2.0)  # clipping to the RGB gamut moves it slightly


def test_reinhard_matches_each_photo_to_its_own_image():
    torch.manual_seed(0)
    photos = torch.rand(2, 3, 24, 24) * 0.5 - 0.5
    styles = torch.stack([torch.rand(3, 24, 24) * 0.4 + 0.4, torch.rand(3, 24, 24) * 0.4 - 0.8])  # bright, dark
    targets = image_lab_statistics(styles)
    assert targets[0].shape == (2, 3) and np.allclose(targets[0][1], lab_statistics(styles[1:])[0])
    got_mean, _ = image_lab_statistics(reinhard_transfer(photos, *targets))
    assert np.allclose(got_mean, targets[0], atol=2.0)


def test_lab_statistics_streamed_in_batches_equal_the_whole_set():
    images = torch.rand(7, 3, 8, 8) * 2 - 1
    whole_mean, whole_std = lab_statistics(images)
    streamed_mean, streamed_std = lab_statistics(images[i:i + 3] for i in range(0, 7, 3))
    assert np.allclose(streamed_mean, whole_mean, rtol=1e-12) and np.allclose(streamed_std, whole_std, rtol=1e-12)
    lab = _to_lab(images).reshape(-1, 3)
    assert np.allclose(whole_std, lab.std(axis=0), rtol=1e-12)
