"""CUT (Park et al. 2020): one-sided unpaired translation with PatchNCE.

Three trainable parts (generator G, discriminator D, patch projection F) and the two objectives
the training loop alternates between. Only tensors in, tensors out.
``fastcut`` is CUT with λ_NCE = 10 and no identity NCE (the paper's faster variant).
"""

from __future__ import annotations

import torch

from artshift.config import TrainParams
from artshift.errors import ParamsError
from artshift.losses import generator_loss, patch_nce_loss
from artshift.models.gan import GANMethod
from artshift.models.networks import PatchDiscriminator, PatchSampler, ResnetGenerator

FASTCUT_LAMBDA_NCE = 10.0


class CUT(GANMethod):
    """Photo (A) → painting (B) with an adversarial loss and PatchNCE content preservation."""

    def __init__(self, cfg: TrainParams):
        super().__init__(cfg)
        self.lambda_nce = FASTCUT_LAMBDA_NCE if cfg.method == "fastcut" else cfg.lambda_nce
        self.nce_idt = cfg.nce_idt and cfg.method != "fastcut"
        self.G = ResnetGenerator(ngf=cfg.ngf, n_blocks=cfg.n_blocks)
        self.D = PatchDiscriminator(ndf=cfg.ndf)
        n_layers = len(self.G.layers)
        if not all(0 <= i < n_layers for i in cfg.nce_layers):
            raise ParamsError(f"train.nce_layers: indices must be in [0, {n_layers - 1}] for this generator, "
                              f"got {cfg.nce_layers}")
        self.F = PatchSampler(self.G.feature_channels(cfg.nce_layers))
        self.init_networks()

    def generate(self, real_a: torch.Tensor, real_b: torch.Tensor, generator: torch.Generator) -> dict:
        """G on photos (→ ``fake_b``) and, with identity NCE, on paintings (``idt_b``) in the same pass."""
        if not self.nce_idt:
            return {"fake_b": self.G(real_a)}
        out = self.G(torch.cat([real_a, real_b]))
        return {"fake_b": out[: len(real_a)], "idt_b": out[len(real_a):]}

    def d_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
        """D learns to tell real paintings from translated photos."""
        return self.adversarial_terms(self.D, real_b, fakes["fake_b"], generator)

    def nce_loss(self, source: torch.Tensor, output: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """PatchNCE between G's features of ``output`` (queries) and of ``source`` (keys)."""
        layers = self.cfg.nce_layers
        keys, patch_ids = self.F(self.G.encode(source, layers), self.cfg.num_patches, generator=generator)
        queries, _ = self.F(self.G.encode(output, layers), self.cfg.num_patches, patch_ids=patch_ids)
        losses = [patch_nce_loss(q, k, self.cfg.nce_t) for q, k in zip(queries, keys)]
        return torch.stack(losses).mean()

    def g_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Generator objective terms; ``g_total`` is what the G+F optimiser minimises."""
        terms = {"g_gan": generator_loss(self.discriminate(self.D, fakes["fake_b"], generator), self.cfg.gan_loss)}
        terms["nce"] = self.nce_loss(real_a, fakes["fake_b"], generator)  # content kept from the photo
        nce = terms["nce"]
        if "idt_b" in fakes:
            terms["nce_idt"] = self.nce_loss(real_b, fakes["idt_b"], generator)  # G leaves paintings alone
            nce = 0.5 * (nce + terms["nce_idt"])
        terms["g_total"] = self.cfg.lambda_gan * terms["g_gan"] + self.lambda_nce * nce
        return terms
