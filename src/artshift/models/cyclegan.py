"""CycleGAN (Zhu et al. 2017): two generators, two discriminators, cycle consistency.

G maps photos (A) to paintings (B) and is the one exported; G_BA maps back. Content is kept by
the cycle loss |G_BA(G(a)) - a| + |G(G_BA(b)) - b|; the identity loss keeps colours when a
generator is given an image already in its output domain. The discriminators see a history of
generated images rather than only the newest ones, which damps oscillation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from artshift.losses import generator_loss
from artshift.models.gan import GANMethod

if TYPE_CHECKING:
    from artshift.config import TrainParams


class HistoryPool(nn.Module):
    """The image buffer of Shrivastava et al. (2017) as used by CycleGAN.

    Until ``size`` images are stored, each new image is stored and returned. Then each new
    image is, with probability 1/2, returned as is; otherwise a random stored image is returned
    in its place and the new one takes its slot. Its content is saved in checkpoints
    (``get_extra_state``), so a resumed run draws exactly what an uninterrupted one would.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.images: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=rng) < 0.5:
                slot = int(torch.randint(self.size, (), generator=rng))
                out.append(self.images[slot].to(image.device))  # a resumed pool is loaded on the CPU
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def get_extra_state(self) -> list[torch.Tensor]:
        return list(self.images)

    def set_extra_state(self, state: list[torch.Tensor]) -> None:
        self.images = list(state)


class CycleGAN(GANMethod):
    """Photo (A) ↔ painting (B) with adversarial, cycle-consistency and identity losses."""

    def __init__(self, cfg: TrainParams, image_size: int):
        super().__init__(cfg, image_size)
        self.G, self.G_BA = self.translator(), self.translator()
        self.D = nn.ModuleDict({"b": self.patch_discriminator(), "a": self.patch_discriminator()})
        self.pool_a, self.pool_b = HistoryPool(cfg.pool_size), HistoryPool(cfg.pool_size)
        self.init_networks()

    def generate(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict:
        """Both translations, both reconstructions and (with λ_idt > 0) both identity mappings."""
        fake_b, fake_a = self.G(real_a), self.G_BA(real_b)
        fakes = {"fake_b": fake_b, "fake_a": fake_a, "rec_a": self.G_BA(fake_b), "rec_b": self.G(fake_a)}
        if self.cfg.lambda_idt > 0:
            fakes |= {"idt_b": self.G(real_b), "idt_a": self.G_BA(real_a)}
        return fakes

    def d_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Both discriminators against pooled fakes; D_A's terms carry an ``_a`` suffix."""
        on_b = self.adversarial_terms(self.D["b"], real_b, self.pool_b(fakes["fake_b"], rng), rng)
        on_a = self.adversarial_terms(self.D["a"], real_a, self.pool_a(fakes["fake_a"], rng), rng)
        total = on_b.pop("d_total") + on_a.pop("d_total")
        return on_b | {f"{name}_a": value for name, value in on_a.items()} | {"d_total": total}

    def g_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Fool both discriminators, come back after a round trip, leave in-domain images alone."""
        cfg = self.cfg
        terms = {"g_gan": generator_loss(self.discriminate(self.D["b"], fakes["fake_b"], rng), cfg.gan_loss),
                 "g_gan_a": generator_loss(self.discriminate(self.D["a"], fakes["fake_a"], rng), cfg.gan_loss),
                 "cycle_a": F.l1_loss(fakes["rec_a"], real_a), "cycle_b": F.l1_loss(fakes["rec_b"], real_b)}
        total = cfg.lambda_gan * (terms["g_gan"] + terms["g_gan_a"]) + cfg.lambda_cycle * (
            terms["cycle_a"] + terms["cycle_b"])
        if "idt_b" in fakes:
            terms["idt_a"] = F.l1_loss(fakes["idt_a"], real_a)
            terms["idt_b"] = F.l1_loss(fakes["idt_b"], real_b)
            total = total + cfg.lambda_cycle * cfg.lambda_idt * (terms["idt_a"] + terms["idt_b"])
        terms["g_total"] = total
        return terms
