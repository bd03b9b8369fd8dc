"""Losses: pure functions of tensors.

- :func:`gan_loss` — the adversarial objective (LSGAN, Mao et al. 2017, as used by CUT).
- :func:`patch_nce_loss` — the PatchNCE contrastive loss (Park et al. 2020): a patch of the
  output should be closer to the input patch at the same position than to the other patches.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def gan_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """LSGAN loss: mean squared distance of discriminator outputs to 1 (real) or 0 (fake)."""
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.mse_loss(logits, target)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's objective: real scored as real, fake as fake, averaged."""
    return 0.5 * (gan_loss(real_logits, True) + gan_loss(fake_logits, False))


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
