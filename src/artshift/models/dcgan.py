"""DCGAN (Radford et al. 2016): new abstract paintings from noise, trained on paintings only.

G maps z ~ N(0, I) to a painting; D tells real paintings from generated ones. The photos in
the batch are ignored. The same adversarial losses and stabilisers as the translation methods
apply. G has batch norm as in the paper; D has none (see :class:`DCGANDiscriminator`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from artshift.errors import ParamsError
from artshift.losses import generator_loss
from artshift.models.gan import GANMethod
from artshift.models.networks import DCGANDiscriminator, DCGANGenerator, check_dcgan_size

if TYPE_CHECKING:
    from artshift.config import TrainParams


class DCGAN(GANMethod):
    """Noise → painting generator and a painting discriminator of matching depth."""

    def __init__(self, cfg: TrainParams, image_size: int):
        super().__init__(cfg, image_size)
        try:
            self.G = DCGANGenerator(z_dim=cfg.z_dim, ngf=cfg.ngf, image_size=image_size)
        except ValueError as exc:  # the size is train.crop_size, or preprocess.load_size when that is null
            raise ParamsError(f"train.crop_size: {exc} (DCGAN trains at train.crop_size, or at "
                              "preprocess.load_size when that is null)") from None
        self.D = DCGANDiscriminator(ndf=cfg.ndf, image_size=image_size, minibatch_std=cfg.minibatch_std)
        self.init_networks()

    @classmethod
    def check_image_size(cls, size: int) -> None:
        """G doubles a 4×4 stem up to the image size, so only powers of two from 8 are reachable."""
        try:
            check_dcgan_size(size)
        except ValueError as exc:
            raise ValueError(f"crop_size: {exc} (train.crop_size, or preprocess.load_size when that is null)") from None

    @classmethod
    def check_params(cls, cfg: TrainParams) -> None:
        """G's batch norm needs at least two images per batch."""
        if cfg.batch_size < 2:
            raise ValueError(f"batch_size: dcgan uses batch norm and needs >= 2, got {cfg.batch_size}")

    def noise(self, count: int, rng: torch.Generator) -> torch.Tensor:
        """``count`` latent vectors z ~ N(0, I), drawn on the CPU from ``rng``, on G's device."""
        return torch.randn(count, self.cfg.z_dim, generator=rng).to(next(self.G.parameters()).device)

    def generate(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict:
        """As many new paintings as there are real ones in the batch."""
        return {"fake_b": self.G(self.noise(len(real_b), rng))}

    def d_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """D learns to tell real paintings from generated ones."""
        return self.adversarial_terms(self.D, real_b, fakes["fake_b"], rng)

    def g_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """G's adversarial loss (DCGAN has no content term)."""
        g_gan = generator_loss(self.discriminate(self.D, fakes["fake_b"], rng), self.cfg.gan_loss)
        return {"g_gan": g_gan, "g_total": self.cfg.lambda_gan * g_gan}
