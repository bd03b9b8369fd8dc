"""CUT (Park et al. 2020): one-sided unpaired translation with PatchNCE, and FastCUT.

Three trainable parts (generator G, discriminator D, patch projection F) and the two objectives
the training loop alternates between. Only tensors in, tensors out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from artshift.errors import ParamsError
from artshift.losses import generator_loss, patch_nce_loss
from artshift.models.gan import GANMethod
from artshift.models.networks import PatchSampler

if TYPE_CHECKING:
    from artshift.config import TrainParams


class CUT(GANMethod):
    """Photo (A) → painting (B) with an adversarial loss and PatchNCE content preservation.

    Its settings are the ``train.*`` field defaults (λ_NCE 1, identity NCE on)."""

    def __init__(self, cfg: TrainParams, image_size: int):
        super().__init__(cfg, image_size)
        self.G, self.D = self.translator(), self.patch_discriminator()
        n_layers = len(self.G.layers)
        if not all(0 <= i < n_layers for i in cfg.nce_layers):
            raise ParamsError(f"train.nce_layers: indices must be in [0, {n_layers - 1}] for this generator, "
                              f"got {cfg.nce_layers}")
        self.F = PatchSampler(self.G.feature_channels(cfg.nce_layers))
        self.init_networks()

    def generate(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict:
        """G on photos (→ ``fake_b``) and, with identity NCE, on paintings (``idt_b``) in the same pass."""
        if not self.cfg.nce_idt:
            return {"fake_b": self.G(real_a)}
        out = self.G(torch.cat([real_a, real_b]))
        return {"fake_b": out[: len(real_a)], "idt_b": out[len(real_a):]}

    def d_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """D learns to tell real paintings from translated photos."""
        return self.adversarial_terms(self.D, real_b, fakes["fake_b"], rng)

    def nce_loss(self, source: torch.Tensor, output: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """PatchNCE between G's features of ``output`` (queries) and of ``source`` (keys)."""
        layers = self.cfg.nce_layers
        keys, patch_ids = self.F(self.G.encode(source, layers), self.cfg.num_patches, rng=rng)
        queries, _ = self.F(self.G.encode(output, layers), self.cfg.num_patches, patch_ids=patch_ids)
        losses = [patch_nce_loss(q, k, self.cfg.nce_t) for q, k in zip(queries, keys)]
        return torch.stack(losses).mean()

    def g_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Generator objective terms; ``g_total`` is what the G+F optimiser minimises."""
        terms = {"g_gan": generator_loss(self.discriminate(self.D, fakes["fake_b"], rng), self.cfg.gan_loss)}
        terms["nce"] = self.nce_loss(real_a, fakes["fake_b"], rng)  # content kept from the photo
        nce = terms["nce"]
        if "idt_b" in fakes:
            terms["nce_idt"] = self.nce_loss(real_b, fakes["idt_b"], rng)  # G leaves paintings alone
            nce = 0.5 * (nce + terms["nce_idt"])
        terms["g_total"] = self.cfg.lambda_gan * terms["g_gan"] + self.cfg.lambda_nce * nce
        return terms


class FastCUT(CUT):
    """The paper's faster variant: the same networks, λ_NCE = 10 and no identity NCE by default."""

    param_defaults = {"lambda_nce": 10.0, "nce_idt": False}
