import pytest
import torch

from artshift.augment import POLICIES, diff_augment
from artshift.models.networks import ResnetGenerator
from artshift.train import ema_decay, lr_factor, update_ema


@pytest.mark.parametrize("policy", [[p] for p in POLICIES] + [list(POLICIES)])
def test_diffaugment_keeps_shape_and_is_differentiable(policy):
    x = (torch.rand(3, 3, 16, 20) * 2 - 1).requires_grad_(True)
    out = diff_augment(x, policy, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.equal(out.detach(), x.detach())


def test_diffaugment_is_seeded_and_empty_policy_is_identity():
    x = torch.rand(2, 3, 8, 8)
    a = diff_augment(x, list(POLICIES), torch.Generator().manual_seed(1))
    b = diff_augment(x, list(POLICIES), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(diff_augment(x, []), x)


def test_cutout_zeroes_a_half_size_square():
    out = diff_augment(torch.ones(1, 1, 8, 8), ["cutout"], torch.Generator().manual_seed(0))
    assert (out == 0).sum().item() == 16


def test_linear_decay_over_second_half():
    assert [lr_factor(s, 10, True) for s in (0, 4, 5, 6, 9, 10)] == pytest.approx([1, 1, 1, 0.8, 0.2, 0])
    assert lr_factor(9, 10, False) == 1.0


def test_ema_moves_toward_live_weights():
    live, ema = ResnetGenerator(ngf=4, n_blocks=1), ResnetGenerator(ngf=4, n_blocks=1)
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, live, decay=0.9)
    for old, averaged, current in zip(before, ema.parameters(), live.parameters()):
        assert torch.allclose(averaged, 0.9 * old + 0.1 * current, atol=1e-6)


def test_ema_decay_warms_up_then_holds_the_target():
    assert [ema_decay(s, 0.999) for s in (1, 10, 90)] == pytest.approx([2 / 11, 11 / 20, 91 / 100])
    assert ema_decay(100_000, 0.999) == 0.999
    assert ema_decay(1000, 0.5) == 0.5


def test_ema_copies_batch_norm_statistics():
    live, ema = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    live(torch.randn(4, 3, 2, 2) + 5)
    update_ema(ema, live, decay=0.9)
    assert torch.equal(ema.running_mean, live.running_mean) and ema.num_batches_tracked == 1
