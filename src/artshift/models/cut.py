"""CUT (Park et al. 2020): one-sided unpaired translation with PatchNCE.

Holds the three trainable parts (generator G, discriminator D, patch projection F) and the
two objectives the training loop alternates between. Only tensors in, tensors out.
``fastcut`` is CUT with λ_NCE = 10 and no identity NCE (the paper's faster variant).
"""

from __future__ import annotations

import torch
from torch import nn

from artshift.augment import diff_augment
from artshift.config import TrainParams
from artshift.errors import ParamsError
from artshift.losses import discriminator_loss, generator_loss, gradient_penalty, patch_nce_loss, r1_penalty
from artshift.models.networks import PatchDiscriminator, PatchSampler, ResnetGenerator, init_weights

FASTCUT_LAMBDA_NCE = 10.0


def _spectral_norm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            _spectral_norm(child)


class CUT(nn.Module):
    """Photo (A) → painting (B) with an adversarial loss and PatchNCE content preservation."""

    def __init__(self, cfg: TrainParams):
        super().__init__()
        self.cfg = cfg
        self.lambda_nce = FASTCUT_LAMBDA_NCE if cfg.method == "fastcut" else cfg.lambda_nce
        self.nce_idt = cfg.nce_idt and cfg.method != "fastcut"
        self.G = ResnetGenerator(ngf=cfg.ngf, n_blocks=cfg.n_blocks)
        self.D = PatchDiscriminator(ndf=cfg.ndf)
        n_layers = len(self.G.layers)
        if not all(0 <= i < n_layers for i in cfg.nce_layers):
            raise ParamsError(f"train.nce_layers: indices must be in [0, {n_layers - 1}] for this generator, "
                              f"got {cfg.nce_layers}")
        self.F = PatchSampler(self.G.feature_channels(cfg.nce_layers))
        for net in (self.G, self.D, self.F):
            init_weights(net)
        if cfg.spectral_norm:
            _spectral_norm(self.D)

    @property
    def arch(self) -> dict:
        """Constructor arguments of G: all that is needed to rebuild it for inference."""
        return {"ngf": self.cfg.ngf, "n_blocks": self.cfg.n_blocks}

    def translate(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G on photos (→ fake paintings) and, with identity NCE, on paintings in the same pass."""
        if not self.nce_idt:
            return self.G(real_a), None
        out = self.G(torch.cat([real_a, real_b]))
        return out[: len(real_a)], out[len(real_a):]

    def discriminate(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """D's logits on DiffAugmented images (the same augmentation policy for real and fake)."""
        return self.D(diff_augment(images, self.cfg.diffaugment, generator))

    def d_losses(self, real_b: torch.Tensor, fake_b: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Discriminator objective terms; ``d_total`` is minimised. ``fake_b`` is detached."""
        cfg = self.cfg
        real_b = real_b.detach().requires_grad_(cfg.r1_gamma > 0)
        real_logits = self.discriminate(real_b, generator)
        fake_logits = self.discriminate(fake_b.detach(), generator)
        terms = {"d_adv": discriminator_loss(real_logits, fake_logits, cfg.gan_loss),
                 "d_real": real_logits.mean().detach(), "d_fake": fake_logits.mean().detach()}
        total = terms["d_adv"]
        if cfg.r1_gamma > 0:
            terms["r1"] = r1_penalty(real_logits, real_b)
            total = total + 0.5 * cfg.r1_gamma * terms["r1"]
        if cfg.gan_loss == "wgan" and cfg.gp_lambda > 0:
            alpha = torch.rand(len(real_b), 1, 1, 1, generator=generator)
            terms["gp"] = gradient_penalty(lambda x: self.discriminate(x, generator), real_b.detach(), fake_b, alpha)
            total = total + cfg.gp_lambda * terms["gp"]
        terms["d_total"] = total
        return terms

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
        terms = {"g_gan": generator_loss(self.discriminate(fake_b, generator), self.cfg.gan_loss)}
        terms["nce"] = self.nce_loss(real_a, fake_b, generator)  # content kept from the photo
        nce = terms["nce"]
        if idt_b is not None:
            terms["nce_idt"] = self.nce_loss(real_b, idt_b, generator)  # G leaves paintings alone
            nce = 0.5 * (nce + terms["nce_idt"])
        terms["g_total"] = self.cfg.lambda_gan * terms["g_gan"] + self.lambda_nce * nce
        return terms
