"""What every training method shares (the registry of methods is :mod:`artshift.models`).

A method owns its networks and the two objectives the training loop alternates between. Every
method has ``G`` (the generator that is sampled, averaged by EMA and exported; its class
declares what it takes, ``G.takes``) and ``D`` (all of its discriminators as one module), and
implements:

- ``generate(real_a, real_b, rng)``: one forward pass of the generators → named tensors;
- ``d_losses(real_a, real_b, fakes, rng)``: terms including ``d_total`` (minimised by D);
- ``g_losses(real_a, real_b, fakes, rng)``: terms including ``g_total`` (minimised by G);
- ``generator_parameters()``: what the generator-side optimiser updates.

``real_a`` are photos and ``real_b`` paintings; ``rng`` is the seeded ``torch.Generator`` of
the run. A method may also set ``param_defaults`` (``train.*`` values it uses unless
``params.yaml`` sets them), ``check_params`` (constraints between ``train.*`` values) and
``networks`` (the network classes it trains, whose ``min_side`` and ``size_multiple`` give the
training image sizes it can use: ``check_image_size``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from artshift.augment import diff_augment
from artshift.losses import discriminator_loss, gradient_penalty, r1_penalty
from artshift.models.networks import PatchDiscriminator, ResnetGenerator, apply_spectral_norm, init_weights

if TYPE_CHECKING:  # config imports the method registry, so only the type is needed here
    from artshift.config import TrainParams


class GANMethod(nn.Module):
    """Base of every method: discriminator scoring with DiffAugment and the penalised D objective."""

    G: nn.Module
    D: nn.Module
    # train.* values this method uses when params.yaml leaves them unset (null), as CUT's
    # ``set_defaults``: an explicit value in params.yaml still wins.
    param_defaults: ClassVar[dict[str, object]] = {}
    # The classes of the networks it trains; each declares the smallest side it trains on
    # (``min_side``) and what the side must divide by (``size_multiple``). By default those that
    # :meth:`translator` and :meth:`patch_discriminator` build.
    networks: ClassVar[tuple[type[nn.Module], ...]] = (ResnetGenerator, PatchDiscriminator)
    # The fp16 loss scale of the current step, set by the training loop: the gradient penalties
    # scale their inner gradients by it (1.0 when no loss scaling is active).
    grad_scale: float = 1.0

    def __init__(self, cfg: TrainParams, image_size: int):
        super().__init__()
        self.cfg = cfg

    def translator(self) -> ResnetGenerator:
        """A photo ↔ painting generator as ``train.*`` configures it (ngf, n_blocks, antialias)."""
        return ResnetGenerator(ngf=self.cfg.ngf, n_blocks=self.cfg.n_blocks, antialias=self.cfg.antialias)

    def patch_discriminator(self) -> PatchDiscriminator:
        """A PatchGAN discriminator as ``train.*`` configures it (ndf, antialias)."""
        return PatchDiscriminator(ndf=self.cfg.ndf, antialias=self.cfg.antialias)

    @classmethod
    def check_params(cls, cfg: TrainParams) -> None:
        """Raise ``ValueError("<key>: <reason>")`` when ``train.*`` values do not suit this method."""

    @classmethod
    def check_image_size(cls, size: int) -> None:
        """Raise ``ValueError("crop_size: <reason>")`` when this method cannot train on ``size`` px
        images (``train.crop_size``, or ``preprocess.load_size`` when that is null): smaller than
        one of its networks' ``min_side`` (the training step would fail on a 1×1 map) or not a
        multiple of their ``size_multiple``."""
        minimum = max(net.min_side for net in cls.networks)
        multiple = math.lcm(*(net.size_multiple for net in cls.networks))
        if size >= minimum and size % multiple == 0:
            return
        needs = "; ".join(f"{net.__name__} >= {net.min_side}" + (f", a multiple of {net.size_multiple}"
                                                                 if net.size_multiple > 1 else "")
                          for net in cls.networks)
        raise ValueError(f"crop_size: {cls.__name__} trains on sides of at least {minimum} px that are multiples "
                         f"of {multiple} ({needs}), got {size} (train.crop_size, or preprocess.load_size when "
                         "that is null)")

    def init_networks(self) -> None:
        """DCGAN/CycleGAN initialisation for every network, then spectral norm on D if asked."""
        for net in self.children():
            init_weights(net)
        if self.cfg.spectral_norm:
            apply_spectral_norm(self.D)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters the generator-side optimiser updates (G, plus any helper networks; not frozen
        parts such as a pretrained encoder)."""
        return [p for name, p in self.named_parameters() if not name.startswith("D.") and p.requires_grad]

    def discriminate(self, critic: nn.Module, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """``critic``'s logits on DiffAugmented images (one policy for real and fake alike)."""
        return critic(diff_augment(images, self.cfg.diffaugment, rng))

    def adversarial_terms(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                          rng: torch.Generator) -> dict[str, torch.Tensor]:
        """One discriminator's objective: GAN loss, mean scores, R1 or WGAN-GP; ``d_total`` sums them.

        ``fake`` is detached here: this objective only trains the discriminator.
        """
        cfg = self.cfg
        real = real.detach().requires_grad_(cfg.r1_gamma > 0)
        real_logits = self.discriminate(critic, real, rng)
        fake_logits = self.discriminate(critic, fake.detach(), rng)
        terms = {"d_adv": discriminator_loss(real_logits, fake_logits, cfg.gan_loss),
                 "d_real": real_logits.mean().detach(), "d_fake": fake_logits.mean().detach()}
        total = terms["d_adv"]
        if cfg.r1_gamma > 0:
            terms["r1"] = r1_penalty(real_logits, real, self.grad_scale)
            total = total + 0.5 * cfg.r1_gamma * terms["r1"]
        if cfg.gan_loss == "wgan" and cfg.gp_lambda > 0:
            alpha = torch.rand(len(real), 1, 1, 1, generator=rng).to(real.device)
            terms["gp"] = gradient_penalty(lambda x: self.discriminate(critic, x, rng), real.detach(), fake,
                                           alpha, self.grad_scale)
            total = total + cfg.gp_lambda * terms["gp"]
        terms["d_total"] = total
        return terms

