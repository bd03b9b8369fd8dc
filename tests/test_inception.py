"""Our FID Inception against pytorch-fid's, with the same (random) weights loaded into both."""

from unittest import mock

import pytest
import torch

from artshift.metrics.inception import FEATURE_DIM, build_inception, extract_features, random_state_dict

pytorch_fid_inception = pytest.importorskip("pytorch_fid.inception")


def test_features_equal_pytorch_fid_with_same_weights():
    state = random_state_dict(seed=3)
    # pytorch-fid loads a state_dict with the 1008-class classifier; build it without downloading.
    with_fc = {**state, "fc.weight": torch.zeros(1008, FEATURE_DIM), "fc.bias": torch.zeros(1008)}
    with mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", return_value=with_fc):
        reference = pytorch_fid_inception.InceptionV3([3]).eval()
    ours = build_inception(state)
    images01 = torch.rand(2, 3, 75, 90, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(images01)[0].flatten(1).double().numpy()
    got = extract_features(ours, images01 * 2 - 1)
    assert got.shape == (2, FEATURE_DIM)
    assert abs(got - expected).max() <= 1e-5
    assert abs(got).mean() > 1e-2  # Kaiming init keeps the features alive


def test_random_weights_are_seeded():
    a, b, c = random_state_dict(1), random_state_dict(1), random_state_dict(2)
    key = "Mixed_7c.branch_pool.conv.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_random_feature_fid_ranks_a_shifted_distribution_above_an_unshifted_one():
    from artshift.metrics.fid import fid_from_features

    model = build_inception(random_state_dict(seed=0))
    rng = torch.Generator().manual_seed(0)
    base, other = (torch.rand(24, 3, 32, 32, generator=rng) * 2 - 1 for _ in range(2))
    shifted = torch.rand(24, 3, 32, 32, generator=rng) * 0.5 + 0.5  # brighter, less varied
    f_base, f_other, f_shift = (extract_features(model, x, 12) for x in (base, other, shifted))
    assert fid_from_features(f_base, f_shift) > 3 * fid_from_features(f_base, f_other)
