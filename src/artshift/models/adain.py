"""AdaIN (Huang & Belongie 2017) with a discriminator: any painting as the style, picked at inference.

A frozen VGG-19 (:mod:`artshift.models.vgg`) encodes the photo and the painting; adaptive
instance normalisation gives the photo's relu4_1 features the painting's channel-wise mean and
std (``alpha`` mixes them with the photo's own features); a decoder, the encoder's mirror,
paints the result. Only the decoder and the discriminator are trained: the decoder with the
content loss (the output's relu4_1 against the AdaIN target), the style loss (means and stds at
relu1_1 … relu4_1 against the painting's) and the adversarial loss of a PatchGAN discriminator
that sees real paintings, with the same GAN losses and stabilisers as every method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from artshift.errors import ArtShiftError
from artshift.generator_io import GeneratorInput
from artshift.log import get_logger
from artshift.losses import channel_mean_std, generator_loss, style_loss
from artshift.models.gan import GANMethod
from artshift.models.networks import MIN_FEATURE_SIDE, PatchDiscriminator
from artshift.models.vgg import (
    LAYERS,
    POOLS,
    RANDOM_INIT_LABEL,
    STANDARD_LABEL,
    VGGEncoder,
    random_vgg_state_dict,
    torchvision_features,
)
from artshift.weights import WeightsSpec, find_weights

if TYPE_CHECKING:
    from artshift.config import TrainParams

# The decoder undoes the encoder's pools: photo sides must be multiples of this (styles: any size).
SIZE_MULTIPLE = 2 ** POOLS
VGG19_WEIGHTS = WeightsSpec(title="VGG-19 weights (torchvision)", file="vgg19-dcbb9e9d.pth",
                            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", param="train.vgg_weights")
RANDOM_VGG_SEED = 0
log = get_logger("weights")


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation: ``content`` features (N, C, H, W) with each channel
    re-scaled to the mean and std of the same channel of ``style`` (N, C, H', W', any size)."""
    content_mean, content_std = channel_mean_std(content, eps)
    style_mean, style_std = channel_mean_std(style, eps)
    return ((content.float() - content_mean) / content_std * style_std + style_mean).to(content.dtype)


def _mirrored_convs() -> list[tuple[int, int] | str]:
    """The encoder's convs as (in, out) channels in reverse order with in and out swapped;
    "U" (a ×2 upsampling) where the encoder pools."""
    steps: list[tuple[int, int] | str] = []
    channels = 3
    for spec in LAYERS:
        steps.append("U" if spec == "M" else (channels, spec))
        channels = channels if spec == "M" else spec
    return [step if step == "U" else (step[1], step[0]) for step in reversed(steps)]


class AdaINDecoder(nn.Module):
    """relu4_1 features → [-1, 1] RGB at 2**POOLS × their side: the encoder's mirror, as in
    Huang & Belongie (nearest ×2 upsampling where it pools, 3×3 convs with reflection padding
    and ReLU, a tanh on the RGB output). ``ngf`` 64 gives their widths (256-128-64); other
    values scale every width but the encoder's 512 input channels."""

    def __init__(self, ngf: int = 64):
        super().__init__()
        steps = _mirrored_convs()
        layers: list[nn.Module] = []
        for index, step in enumerate(steps):
            if step == "U":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            c_in, c_out = step
            c_in = VGGEncoder.out_channels if index == 0 else c_in * ngf // 64
            c_out = c_out if c_out == 3 else c_out * ngf // 64
            last = index == len(steps) - 1
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3), nn.Tanh() if last else nn.ReLU()]
        self.model = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(features)

    def he_init(self) -> None:
        """He (Kaiming-normal) weights and zero biases for every conv but the RGB one: a deep
        ReLU stack without normalisation keeps its activations' scale only so (the N(0, 0.02)
        of the normalised GANs shrinks them layer by layer, and the decoder barely learns)."""
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)


class Stylised(NamedTuple):
    """A generator pass with what the losses need: the image, the AdaIN target it decodes, and
    the style image's features at every VGG tap."""

    image: torch.Tensor
    target: torch.Tensor
    style_features: list[torch.Tensor]


class AdaINGenerator(nn.Module):
    """(photo (N, 3, H, W), style (N, 3, H', W'), alpha) → the photo painted with the style's
    feature statistics, (N, 3, H, W) in [-1, 1]. H and W must be multiples of
    :data:`SIZE_MULTIPLE`; the style may have any size of at least that. ``alpha`` 1 is the full
    style, 0 the decoder's reconstruction of the photo."""

    takes = GeneratorInput.PHOTO_AND_STYLE
    size_multiple = SIZE_MULTIPLE  # the decoder mirrors the encoder's pools: photos must fit them exactly
    min_side = SIZE_MULTIPLE * MIN_FEATURE_SIDE  # the decoder's first conv reflect-pads relu4_1's map

    def __init__(self, ngf: int = 64):
        super().__init__()
        self.arch = {"ngf": ngf}  # constructor arguments, saved beside the weights
        self.encoder = VGGEncoder()
        self.decoder = AdaINDecoder(ngf)

    def forward(self, photo: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor | float = 1.0,
                details: bool = False) -> torch.Tensor | Stylised:
        """The stylised photo; with ``details``, a :class:`Stylised` (for the training losses)."""
        photo_features = self.encoder(photo)[-1]
        style_features = self.encoder(style)
        target = alpha * adain(photo_features, style_features[-1]) + (1 - alpha) * photo_features
        image = self.decoder(target)
        return Stylised(image, target, style_features) if details else image


def pretrained_vgg(explicit: str) -> tuple[dict[str, torch.Tensor], str]:
    """The encoder's weights and their label: torchvision's VGG-19 as the weights lookup finds it
    (``train.vgg_weights``, ``$ARTSHIFT_WEIGHTS_DIR``, the torch hub cache, a download), else a
    seeded random VGG with a warning. A file of another layout is refused, naming what is wrong."""
    found = find_weights(VGG19_WEIGHTS, explicit)
    if found is None:
        label = f"{RANDOM_INIT_LABEL} (seed {RANDOM_VGG_SEED}, kaiming normal)"
        log.warning("standard VGG-19 weights unavailable: using %s; AdaIN's content and style losses and "
                    "style_distance then measure random features", label)
        return random_vgg_state_dict(RANDOM_VGG_SEED), label
    path, state = found
    try:
        return torchvision_features(state), STANDARD_LABEL
    except ValueError as exc:
        raise ArtShiftError(f"{path}: {exc}") from None


class AdaIN(GANMethod):
    """Photo + any painting → the photo in that painting's style; trained on random pairs."""

    networks = (AdaINGenerator, PatchDiscriminator)

    def __init__(self, cfg: TrainParams, image_size: int):
        super().__init__(cfg, image_size)
        self.G, self.D = AdaINGenerator(ngf=cfg.ngf), self.patch_discriminator()
        self.init_networks()  # D and the decoder's RGB conv; the encoder's weights are loaded next
        self.G.decoder.he_init()
        self.G.encoder.load_weights(*pretrained_vgg(cfg.vgg_weights))

    def generate(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict:
        """Each photo painted in the style of the painting drawn with it (``alpha`` 1, as trained)."""
        image, target, style_features = self.G(real_a, real_b, details=True)
        return {"fake_b": image, "target": target, "style_features": style_features}

    def d_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """D learns to tell real paintings from stylised photos."""
        return self.adversarial_terms(self.D, real_b, fakes["fake_b"], rng)

    def g_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fakes: dict,
                 rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Fool D, keep the AdaIN target's content at relu4_1, match the style's statistics."""
        cfg = self.cfg
        output_features = self.G.encoder(fakes["fake_b"])
        terms = {"g_gan": generator_loss(self.discriminate(self.D, fakes["fake_b"], rng), cfg.gan_loss),
                 "content": F.mse_loss(output_features[-1].float(), fakes["target"].float()),
                 "style": style_loss(output_features, fakes["style_features"])}
        terms["g_total"] = (cfg.lambda_gan * terms["g_gan"] + cfg.lambda_content * terms["content"]
                            + cfg.lambda_style * terms["style"])
        return terms
