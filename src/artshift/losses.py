"""Losses: pure functions of tensors.

- Adversarial objectives (``mode``): ``vanilla`` (Goodfellow et al. 2014, with the
  non-saturating generator loss), ``lsgan`` (Mao et al. 2017, CUT's default), ``hinge``
  (Lim & Ye 2017) and ``wgan`` (Arjovsky et al. 2017; use with a gradient penalty).
- Gradient penalties: R1 on real data (Mescheder et al. 2018) and WGAN-GP (Gulrajani et al. 2017).
- :func:`patch_nce_loss` — the PatchNCE contrastive loss (Park et al. 2020): a patch of the
  output should be closer to the input patch at the same position than to the other patches.
- :func:`style_distance` / :func:`style_loss` — AdaIN's style loss (Huang & Belongie 2017): the
  channel-wise mean and standard deviation of CNN features of the output against the style
  image's, summed over layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import torch
from torch.nn import functional as F

from artshift.choices import GanLoss

GAN_MODES: tuple[str, ...] = get_args(GanLoss)


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"unknown GAN loss {mode!r}; expected one of {GAN_MODES}")


def generator_loss(fake_logits: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """What G minimises so that D scores its samples as real."""
    _check_mode(mode)
    if mode == "vanilla":  # non-saturating: -log D(G(z)) rather than log(1 - D(G(z)))
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if mode == "lsgan":
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))
    return -fake_logits.mean()  # hinge and wgan


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """What D minimises: real scored as real, fake as fake (mean of the two terms)."""
    _check_mode(mode)
    if mode == "vanilla":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    elif mode == "lsgan":
        real = F.mse_loss(real_logits, torch.ones_like(real_logits))
        fake = F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
    elif mode == "hinge":
        real, fake = F.relu(1 - real_logits).mean(), F.relu(1 + fake_logits).mean()
    else:  # wgan: the critic maximises E[D(real)] - E[D(fake)]
        return fake_logits.mean() - real_logits.mean()
    return 0.5 * (real + fake)


def _input_gradient(outputs: torch.Tensor, inputs: torch.Tensor, scale: float) -> torch.Tensor:
    """∂ Σ outputs / ∂ inputs, kept differentiable. Under fp16 loss scaling the sum is scaled
    by ``scale`` before differentiating and the gradient unscaled after, so it does not
    underflow in half precision (PyTorch's AMP recipe for gradient penalties); the result is
    in float32 either way."""
    (grad,) = torch.autograd.grad(outputs.float().sum() * scale, inputs, create_graph=True)
    return grad.float() / scale


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """E[|∇_x D(x)|²] over real images (``real_images`` must require grad; D's graph is kept).
    ``scale``: the fp16 loss scale, if any (see :func:`_input_gradient`)."""
    grad = _input_gradient(real_logits, real_images, scale)
    return grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """WGAN-GP: E[(|∇ D(x̂)| - 1)²] at x̂ = α·real + (1-α)·fake, α of shape (B, 1, 1, 1).
    ``scale``: the fp16 loss scale, if any (see :func:`_input_gradient`)."""
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    grad = _input_gradient(critic(mixed), mixed, scale)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE (InfoNCE over patches of one image), averaged over patches and batch.

    ``query`` and ``key`` are (B, P, D) unit vectors: patch p of the output (query) and of the
    input (key) at the same position form the positive pair; the other P-1 input patches of the
    same image are the negatives. The key side is detached, as in CUT.
    """
    if query.shape != key.shape or query.dim() != 3:
        raise ValueError(f"query and key must both be (B, P, D), got {tuple(query.shape)} and {tuple(key.shape)}")
    batch, patches, _ = query.shape
    logits = torch.bmm(query, key.detach().transpose(1, 2)) / temperature  # (B, P, P)
    targets = torch.arange(patches, device=query.device).repeat(batch)
    return F.cross_entropy(logits.reshape(batch * patches, patches), targets)


def channel_mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel of (N, C, H, W) features: the mean and the standard deviation
    sqrt(var + ``eps``) over H and W (population variance), each of shape (N, C, 1, 1), in float32
    (squares of large half-precision activations would overflow)."""
    features = features.float()
    var, mean = torch.var_mean(features, dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


def style_distance(features: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """(N,) per image: Σ over layers of the mean over channels of (Δ mean)² + (Δ std)² between
    ``features`` (of the outputs) and ``targets`` (of their style images), layer by layer."""
    if len(features) != len(targets):
        raise ValueError(f"need one target per feature layer, got {len(features)} and {len(targets)}")
    total = 0.0
    for feature, target in zip(features, targets):
        (mean, std), (target_mean, target_std) = channel_mean_std(feature), channel_mean_std(target)
        total = total + ((mean - target_mean) ** 2 + (std - target_std) ** 2).flatten(1).mean(1)
    return total


def style_loss(features: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """AdaIN's style loss: :func:`style_distance` averaged over the batch (Huang & Belongie's sum
    over layers of the MSE of the channel means plus the MSE of the channel stds)."""
    return style_distance(features, targets).mean()
