"""DCGAN (Radford et al. 2016): new abstract paintings from noise, trained on paintings only.

G maps z ~ N(0, I) to a painting; D tells real paintings from generated ones. The photos in
the batch are ignored. The same adversarial losses and stabilisers as the translation methods
apply. G has batch norm as in the paper; D has none (see :class:`DCGANDiscriminator`).
"""

from __future__ import annotations

import torch

from artshift.config import TrainParams
from artshift.errors import ParamsError
from artshift.losses import generator_loss
from artshift.models.gan import GANMethod
from artshift.models.networks import DCGANDiscriminator, DCGANGenerator


class DCGAN(GANMethod):
    """Noise → painting generator and a painting discriminator of matching depth."""

    def __init__(self, cfg: TrainParams, image_size: int):
        super().__init__(cfg)
        try:
            self.G = DCGANGenerator(z_dim=cfg.z_dim, ngf=cfg.ngf, image_size=image_size)
        except ValueError as exc:  # the image size comes from the preprocess params
            raise ParamsError(f"preprocess.image_size: {exc}") from None
        self.D = DCGANDiscriminator(ndf=cfg.ndf, image_size=image_size)
        self.init_networks()

    def noise(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` latent vectors z ~ N(0, I)."""
        return torch.randn(count, self.cfg.z_dim, generator=generator)

    def generate(self, real_a: torch.Tensor, real_b: torch.Tensor, generator: torch.Generator) -> dict:
        """As many new paintings as there are real ones in the batch."""
        return {"fake_b": self.G(self.noise(len(real_b), generator))}

    def d_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
        """D learns to tell real paintings from generated ones."""
        return self.adversarial_terms(self.D, real_b, fakes["fake_b"], generator)

    def g_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
        """G's adversarial loss (DCGAN has no content term)."""
        g_gan = generator_loss(self.discriminate(self.D, fakes["fake_b"], generator), self.cfg.gan_loss)
        return {"g_gan": g_gan, "g_total": self.cfg.lambda_gan * g_gan}
