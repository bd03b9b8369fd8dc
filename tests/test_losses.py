import math

import pytest
import torch

from artshift.losses import discriminator_loss, generator_loss, gradient_penalty, patch_nce_loss, r1_penalty

REAL, FAKE = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])


def _softplus(x):
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(
    ("mode", "d_expected", "g_expected"),
    [
        # vanilla: BCE with logits; D: mean softplus(-real) and softplus(fake); G non-saturating softplus(-fake)
        ("vanilla", 0.5 * ((_softplus(-2) + _softplus(1)) / 2 + (_softplus(0.5) + _softplus(-3)) / 2),
         (_softplus(-0.5) + _softplus(3)) / 2),
        # lsgan: D: mean (real-1)^2 and fake^2; G: mean (fake-1)^2
        ("lsgan", 0.5 * ((1 + 4) / 2 + (0.25 + 9) / 2), (0.25 + 16) / 2),
        # hinge: D: mean relu(1-real) and relu(1+fake); G: -mean fake
        ("hinge", 0.5 * ((0 + 2) / 2 + (1.5 + 0) / 2), 1.25),
        # wgan: D: mean fake - mean real; G: -mean fake
        ("wgan", -1.25 - 0.5, 1.25),
    ],
)
def test_gan_losses_hand_computed(mode, d_expected, g_expected):
    assert discriminator_loss(REAL, FAKE, mode).item() == pytest.approx(d_expected, rel=1e-6)
    assert generator_loss(FAKE, mode).item() == pytest.approx(g_expected, rel=1e-6)


def test_unknown_gan_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss(FAKE, "minimax")


def test_r1_matches_autograd_on_a_linear_discriminator():
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    x = torch.randn(4, 1, 2, 2, requires_grad=True)
    logits = (x * w).sum(dim=(1, 2, 3)) + (x ** 2).sum(dim=(1, 2, 3))  # gradient: w + 2x
    expected = ((w + 2 * x.detach()) ** 2).flatten(1).sum(1).mean()
    penalty = r1_penalty(logits, x)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    penalty.backward()  # differentiable: the penalty trains D
    assert x.grad is not None


def test_gradient_penalty_of_linear_critic():
    w = torch.full((1, 3, 2, 2), 0.5 / math.sqrt(12))  # |∇| = |w| = 0.5 everywhere
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    alpha = torch.rand(5, 1, 1, 1)
    assert gradient_penalty(lambda x: (x * w).sum(dim=(1, 2, 3)), real, fake, alpha).item() == pytest.approx(0.25)


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
