"""Device selection and mixed precision: what runs on a GPU, checked here on the CPU."""

import pytest
import torch

from artshift.device import autocast, grad_scaler, resolve_device
from artshift.errors import ParamsError
from artshift.losses import gradient_penalty, r1_penalty
from artshift.models.networks import PatchDiscriminator, init_weights


def test_auto_picks_cuda_only_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", "train.device") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", "train.device") == torch.device("cuda")
    assert resolve_device("cpu", "train.device") == torch.device("cpu")


def test_asking_for_a_missing_gpu_names_the_key(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParamsError, match=r"^evaluate.device: cuda:1 requested but no CUDA GPU is available"):
        resolve_device("cuda:1", "evaluate.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ParamsError, match=r"^train.device: cuda:1 requested but only 1 GPU\(s\) are visible$"):
        resolve_device("cuda:1", "train.device")


def test_precision_contexts():
    cpu = torch.device("cpu")
    layer = torch.nn.Linear(4, 4)
    with autocast(cpu, "bf16"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    assert grad_scaler(cpu, "fp16").is_enabled() and not grad_scaler(cpu, "bf16").is_enabled()


@pytest.fixture
def critic():
    torch.manual_seed(0)
    net = PatchDiscriminator(ndf=8)
    init_weights(net, gain=0.2)
    return net


def _penalties(critic, real, fake, alpha, precision, scale=1.0):
    with autocast(torch.device("cpu"), precision):
        x = real.clone().requires_grad_(True)
        r1 = r1_penalty(critic(x), x, scale)
        gp = gradient_penalty(critic, real, fake, alpha, scale)
    return r1, gp


# bf16 keeps 8 bits of mantissa; through D's 5 convolutions the penalties measured 0.5% (R1) and
# 0.6% (WGAN-GP) from fp32 here. The stated tolerance: 2%.
BF16_RTOL = 0.02


def test_penalties_under_bf16_autocast_match_fp32(critic):
    rng = torch.Generator().manual_seed(1)
    real, fake = (torch.rand(2, 3, 32, 32, generator=rng) * 2 - 1 for _ in range(2))
    alpha = torch.rand(2, 1, 1, 1, generator=rng)
    r1_fp32, gp_fp32 = _penalties(critic, real, fake, alpha, "fp32")
    r1_bf16, gp_bf16 = _penalties(critic, real, fake, alpha, "bf16")
    assert r1_bf16.dtype == gp_bf16.dtype == torch.float32
    assert float(r1_fp32.detach()) > 0
    assert float(r1_bf16.detach()) == pytest.approx(float(r1_fp32.detach()), rel=BF16_RTOL)
    assert float(gp_bf16.detach()) == pytest.approx(float(gp_fp32.detach()), rel=BF16_RTOL)
    r1_bf16.backward()  # the penalty trains D: its graph is kept
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


def test_loss_scale_does_not_change_the_penalty(critic):
    rng = torch.Generator().manual_seed(2)
    real, fake = (torch.rand(1, 3, 32, 32, generator=rng) * 2 - 1 for _ in range(2))
    alpha = torch.rand(1, 1, 1, 1, generator=rng)
    plain, scaled = (_penalties(critic, real, fake, alpha, "fp32", scale) for scale in (1.0, 65536.0))
    for a, b in zip(plain, scaled):
        assert float(b.detach()) == pytest.approx(float(a.detach()), rel=1e-5)
