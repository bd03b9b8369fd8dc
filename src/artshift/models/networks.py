"""Networks: ResNet-block generator, PatchGAN discriminator, PatchNCE projection heads, DCGAN.

The shapes follow CycleGAN / CUT (Zhu et al. 2017, Park et al. 2020): a generator that
downsamples twice, transforms with residual blocks and upsamples back, so its input side must
be a multiple of :data:`SIZE_MULTIPLE`; a 70×70 PatchGAN that scores overlapping patches.
The DCGAN pair (Radford et al. 2016) maps noise to a square picture and back to one logit.
Modules here do no I/O.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from artshift.generator_io import GeneratorInput

# Two stride-2 downsamplings: height and width must be divisible by 4.
SIZE_MULTIPLE = 4


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Two 3×3 convolutions with reflection padding and a skip connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=True),
            _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=True),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator: [-1, 1] RGB in, [-1, 1] RGB out, same height and width.

    ``layers`` is a flat ``nn.ModuleList`` so that PatchNCE can tap intermediate features by
    index. With 6 residual blocks the default ``nce_layers`` [0, 4, 8, 11, 14] tap the padded
    input, the two downsamplings and the 2nd and 5th residual blocks, the same depths CUT uses.
    """

    takes = GeneratorInput.PHOTO

    def __init__(self, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        self.arch = {"ngf": ngf, "n_blocks": n_blocks}  # constructor arguments, saved beside the weights
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, 7, bias=True),
            _norm(ngf),
            nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(2):
            layers += [nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=True),
                       _norm(channels * 2), nn.ReLU(True)]
            channels *= 2
        layers += [ResnetBlock(channels) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=True),
                       _norm(channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, 3, 7), nn.Tanh()]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def encode(self, x: torch.Tensor, layer_ids: list[int]) -> list[torch.Tensor]:
        """Features after each layer in ``layer_ids`` (index -1 would be "before layer 0")."""
        wanted = set(layer_ids)
        feats = []
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in wanted:
                feats.append(x)
            if index >= max(layer_ids):
                break
        return feats

    def feature_channels(self, layer_ids: list[int]) -> list[int]:
        """Channel count of each tapped feature, read from the layer definitions."""
        channels, out = 3, {}
        for index, layer in enumerate(self.layers):
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                channels = layer.out_channels
            out[index] = channels
        return [out[i] for i in layer_ids]


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per overlapping receptive field.

    With ``n_layers=3`` each logit sees a 70×70 patch of the input.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            next_channels = ndf * min(2 ** n, 8)
            layers += [nn.Conv2d(channels, next_channels, 4, stride=stride, padding=1, bias=True),
                       _norm(next_channels), nn.LeakyReLU(0.2, True)]
            channels = next_channels
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchSampler(nn.Module):
    """CUT's projection head: sample spatial positions of each feature map and embed them.

    For every tapped layer a two-layer MLP maps the C-dim feature at each sampled position to a
    unit vector. The same positions are reused for the matching layer of the other image, so
    query and key patches correspond.
    """

    def __init__(self, in_channels: list[int], dim: int = 256):
        super().__init__()
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, dim), nn.ReLU(True), nn.Linear(dim, dim)) for c in in_channels
        )

    def forward(
        self,
        feats: list[torch.Tensor],
        num_patches: int,
        patch_ids: list[torch.Tensor] | None = None,
        rng: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Return per-layer embeddings of shape (B, P, dim) and the positions used."""
        out, ids_used = [], []
        for index, (feat, mlp) in enumerate(zip(feats, self.mlps)):
            batch, channels, height, width = feat.shape
            flat = feat.flatten(2).transpose(1, 2)  # (B, H*W, C)
            if patch_ids is None:
                count = min(num_patches, height * width)
                ids = torch.randperm(height * width, generator=rng)[:count].to(feat.device)  # drawn on the CPU
            else:
                ids = patch_ids[index]
            ids_used.append(ids)
            out.append(F.normalize(mlp(flat[:, ids, :]), dim=-1))
        return out, ids_used


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """Normal(0, gain) initialisation of conv and linear weights, and N(1, gain) batch-norm
    scales, as in CycleGAN/CUT and DCGAN."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)


def _dcgan_widths(image_size: int, base: int) -> list[int]:
    """Channel widths from the 4×4 stem to the last feature map before RGB, doubling per
    halving of resolution and capped at 8× ``base`` (DCGAN's 1024-512-256-128 at 64 px)."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"DCGAN image size must be a power of two >= 8, got {image_size}")
    levels = image_size.bit_length() - 3  # 4 px stem doubled ``levels`` times reaches image_size
    return [base * min(2 ** (levels - 1 - i), 8) for i in range(levels)]


class DCGANGenerator(nn.Module):
    """Noise z of shape (B, z_dim) → (B, 3, S, S) picture in [-1, 1].

    A 4×4 transposed-conv stem, then stride-2 transposed convolutions with batch norm and ReLU
    that double the side until ``image_size``, and a tanh output, as in the DCGAN paper.
    """

    takes = GeneratorInput.NOISE

    def __init__(self, z_dim: int = 100, ngf: int = 64, image_size: int = 64):
        super().__init__()
        self.z_dim = z_dim
        self.arch = {"z_dim": z_dim, "ngf": ngf, "image_size": image_size}  # saved beside the weights
        widths = _dcgan_widths(image_size, ngf)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, widths[0], 4, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], 3, 4, stride=2, padding=1), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """(B, 3, S, S) → (B, 1, 1, 1) logit: stride-2 convolutions with LeakyReLU(0.2).

    Unlike the DCGAN paper, no batch norm: D scores all-real and all-fake batches separately,
    so batch norm would normalise away the batch-wide statistics (palette, brightness) that
    tell them apart (the README's DCGAN notes give the measurement). Spectral norm
    (``train.spectral_norm``) is the normalisation to use here; it also suits WGAN-GP.
    """

    def __init__(self, ndf: int = 64, image_size: int = 64):
        super().__init__()
        widths = _dcgan_widths(image_size, ndf)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


GENERATORS = {cls.__name__: cls for cls in (ResnetGenerator, DCGANGenerator)}


def apply_spectral_norm(module: nn.Module) -> None:
    """Wrap every convolution inside ``module`` with spectral normalisation (Miyato et al. 2018)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)
