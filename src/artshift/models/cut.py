"""CUT (Park et al. 2020): one-sided unpaired translation with PatchNCE.

Holds the three trainable parts (generator G, discriminator D, patch projection F) and the
two objectives the training loop alternates between. Only tensors in, tensors out.
"""

from __future__ import annotations

import torch
from torch import nn

from artshift.config import TrainParams
from artshift.errors import ParamsError
from artshift.losses import discriminator_loss, gan_loss, patch_nce_loss
from artshift.models.networks import PatchDiscriminator, PatchSampler, ResnetGenerator, init_weights


class CUT(nn.Module):
    """Photo (A) → painting (B) with an adversarial loss and PatchNCE content preservation."""

    def __init__(self, cfg: TrainParams):
        super().__init__()
        self.cfg = cfg
        self.G = ResnetGenerator(ngf=cfg.ngf, n_blocks=cfg.n_blocks)
        self.D = PatchDiscriminator(ndf=cfg.ndf)
        n_layers = len(self.G.layers)
        if not all(0 <= i < n_layers for i in cfg.nce_layers):
            raise ParamsError(f"train.nce_layers: indices must be in [0, {n_layers - 1}] for this generator, "
                              f"got {cfg.nce_layers}")
        self.F = PatchSampler(self.G.feature_channels(cfg.nce_layers))
        for net in (self.G, self.D, self.F):
            init_weights(net)

    @property
    def arch(self) -> dict:
        """Constructor arguments of G: all that is needed to rebuild it for inference."""
        return {"ngf": self.cfg.ngf, "n_blocks": self.cfg.n_blocks}

    def translate(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G on photos (→ fake paintings) and, with identity NCE, on paintings in the same pass."""
        if not self.cfg.nce_idt:
            return self.G(real_a), None
        out = self.G(torch.cat([real_a, real_b]))
        return out[: len(real_a)], out[len(real_a):]

    def d_loss(self, real_b: torch.Tensor, fake_b: torch.Tensor) -> torch.Tensor:
        """Discriminator objective; ``fake_b`` is detached so G gets no gradient from it."""
        return discriminator_loss(self.D(real_b), self.D(fake_b.detach()))

    def nce_loss(self, source: torch.Tensor, output: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """PatchNCE between G's features of ``output`` (queries) and of ``source`` (keys)."""
        layers = self.cfg.nce_layers
        keys, patch_ids = self.F(self.G.encode(source, layers), self.cfg.num_patches, generator=generator)
        queries, _ = self.F(self.G.encode(output, layers), self.cfg.num_patches, patch_ids=patch_ids)
        losses = [patch_nce_loss(q, k, self.cfg.nce_t) for q, k in zip(queries, keys)]
        return torch.stack(losses).mean()

    def g_losses(
        self, real_a: torch.Tensor, real_b: torch.Tensor, fake_b: torch.Tensor,
        idt_b: torch.Tensor | None, generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """Generator objective terms; ``g_total`` is what the G+F optimiser minimises."""
        terms = {"g_gan": gan_loss(self.D(fake_b), True)}
        terms["nce"] = self.nce_loss(real_a, fake_b, generator)  # content kept from the photo
        nce = terms["nce"]
        if idt_b is not None:
            terms["nce_idt"] = self.nce_loss(real_b, idt_b, generator)  # G leaves paintings alone
            nce = 0.5 * (nce + terms["nce_idt"])
        terms["g_total"] = self.cfg.lambda_gan * terms["g_gan"] + self.cfg.lambda_nce * nce
        return terms
