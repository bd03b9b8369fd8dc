import math

import pytest
import torch

from artshift.losses import discriminator_loss, gan_loss, patch_nce_loss


def test_lsgan_hand_computed():
    logits = torch.tensor([[0.5, 1.0], [0.0, 2.0]])
    assert gan_loss(logits, True).item() == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert gan_loss(logits, False).item() == pytest.approx((0.25 + 1 + 0 + 4) / 4)
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.5 + 0.5))


def test_patch_nce_hand_computed():
    # One image, two patches, 2-d unit vectors: q0 = k0, q1 orthogonal to k1's neighbour.
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    k = torch.tensor([[[1.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)]]])
    t = 0.5
    # Row 0 logits: [q0.k0, q0.k1]/t = [2, 1.414]; target 0.
    # Row 1 logits: [q1.k0, q1.k1]/t = [0, 1.414]; target 1.
    row0 = -2.0 + math.log(math.exp(2.0) + math.exp(math.sqrt(0.5) / t))
    row1 = -math.sqrt(0.5) / t + math.log(1.0 + math.exp(math.sqrt(0.5) / t))
    assert patch_nce_loss(q, k, t).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_patch_nce_prefers_matching_patches():
    torch.manual_seed(0)
    k = torch.nn.functional.normalize(torch.randn(2, 16, 8), dim=-1)
    shuffled = k[:, torch.randperm(16)]
    assert patch_nce_loss(k, k, 0.07) < patch_nce_loss(shuffled, k, 0.07)
    assert patch_nce_loss(k, k, 0.07).item() < 0.5


def test_patch_nce_gradient_flows_to_query_only():
    q = torch.nn.functional.normalize(torch.randn(1, 4, 3), dim=-1).requires_grad_()
    k = torch.nn.functional.normalize(torch.randn(1, 4, 3), dim=-1).requires_grad_()
    patch_nce_loss(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_patch_nce_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must both be"):
        patch_nce_loss(torch.zeros(4, 3), torch.zeros(4, 3))
