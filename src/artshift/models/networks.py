"""Networks: ResNet-block generator, PatchGAN discriminator, PatchNCE projection heads, DCGAN.

The shapes follow CycleGAN / CUT (Zhu et al. 2017, Park et al. 2020): a generator that
downsamples twice, transforms with residual blocks and upsamples back, so its input side must
be a multiple of :data:`SIZE_MULTIPLE`; a 70×70 PatchGAN that scores overlapping patches.
With ``antialias`` (the default, as in CUT's reference code) every resolution change is
anti-aliased: a stride-1 conv followed by a [1, 3, 3, 1] blur-pool (Zhang 2019) instead of a
stride-2 conv, and bilinear upsampling followed by a 3×3 conv instead of a transposed conv,
whose uneven kernel overlap is the textbook source of checkerboard artefacts (Odena et al. 2016).
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
# The smallest feature map side a layer here can train on: instance norm needs more than one
# position per channel in training (a 1×1 map raises "Expected more than 1 spatial element"),
# and a 1-px reflection pad needs a side of 2. The networks' ``min_side`` follow from it.
MIN_FEATURE_SIDE = 2
# PatchGAN depth: 3 layers give CycleGAN's 70×70 patches.
PATCH_LAYERS = 3


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class BlurDownsample(nn.Module):
    """Low-pass then subsample: the separable [1, 3, 3, 1] / 8 blur, stride 2, reflection padding.

    A fixed depthwise filter (a buffer, not a parameter: nothing to train, nothing to save), so
    a stride-2 layer no longer folds frequencies above the new Nyquist limit back as aliasing.
    Halves any even side exactly.
    """

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = torch.outer(taps, taps) / taps.sum() ** 2
        self.register_buffer("kernel", kernel.expand(channels, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 2, 1, 2), mode="reflect")
        return F.conv2d(padded, self.kernel.to(x.dtype), stride=2, groups=x.shape[1])


def _blur_upsample() -> nn.Module:
    """×2 upsampling that interpolates instead of stamping kernels: bilinear with half-pixel
    centres is exactly zero-insertion followed by the [1, 3, 3, 1] blur (CUT's ``Upsample``),
    with the edges clamped. It exports to one ONNX ``Resize``."""
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


def _downsampling(c_in: int, c_out: int, antialias: bool) -> list[nn.Module]:
    """One ×1/2 step of the generator as three layers (conv, norm, activation), so the layer
    indices that PatchNCE taps mean the same depths with and without anti-aliasing."""
    if not antialias:
        return [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _norm(c_out), nn.ReLU(True)]
    return [nn.Conv2d(c_in, c_out, 3, padding=1), _norm(c_out), nn.Sequential(nn.ReLU(True), BlurDownsample(c_out))]


def _upsampling(c_in: int, c_out: int, antialias: bool) -> list[nn.Module]:
    """One ×2 step of the generator as three layers (upsampling conv, norm, activation)."""
    if not antialias:
        return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), _norm(c_out),
                nn.ReLU(True)]
    return [nn.Sequential(_blur_upsample(), nn.Conv2d(c_in, c_out, 3, padding=1)), _norm(c_out), nn.ReLU(True)]


def _out_channels(layer: nn.Module) -> int | None:
    """Channels produced by the last convolution inside ``layer`` (None if it has none)."""
    convs = [m for m in layer.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    return convs[-1].out_channels if convs else None


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
    input, the two downsampling convs and the 2nd and 5th residual blocks, the same depths CUT
    uses; each resolution step is three layers whether or not it is anti-aliased.
    ``antialias`` defaults to False here so that generator files saved before it existed (their
    ``arch`` lacks the key) rebuild as they were; ``train.antialias`` (default true) sets it.
    """

    takes = GeneratorInput.PHOTO
    size_multiple = SIZE_MULTIPLE  # the output has the input's side only then
    min_side = SIZE_MULTIPLE * MIN_FEATURE_SIDE  # the residual blocks pad and normalise at 1/4 of the side

    def __init__(self, ngf: int = 64, n_blocks: int = 9, antialias: bool = False):
        super().__init__()
        # constructor arguments, saved beside the weights
        self.arch = {"ngf": ngf, "n_blocks": n_blocks, "antialias": antialias}
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, 7, bias=True),
            _norm(ngf),
            nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(2):
            layers += _downsampling(channels, channels * 2, antialias)
            channels *= 2
        layers += [ResnetBlock(channels) for _ in range(n_blocks)]
        for _ in range(2):
            layers += _upsampling(channels, channels // 2, antialias)
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
            channels = _out_channels(layer) or channels
            out[index] = channels
        return [out[i] for i in layer_ids]


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per overlapping receptive field.

    With ``n_layers=3`` each logit sees a 70×70 patch of the input (plus the blur's reach when
    ``antialias``: each stride-2 conv becomes a stride-1 conv, LeakyReLU and a blur-pool).
    Its last normalised map is the input's side over 2**n_layers less the pixel a 4×4 stride-1
    conv takes off, so the input needs ``(MIN_FEATURE_SIDE + 1) · 2**n_layers`` px (:attr:`min_side`,
    24 at the default depth); any side at least that works.
    """

    size_multiple = 1
    min_side = (MIN_FEATURE_SIDE + 1) * 2 ** PATCH_LAYERS

    def __init__(self, ndf: int = 64, n_layers: int = PATCH_LAYERS, antialias: bool = False):
        super().__init__()
        layers = self._block(3, ndf, downsample=True, antialias=antialias, norm=False)
        channels = ndf
        for n in range(1, n_layers + 1):
            next_channels = ndf * min(2 ** n, 8)
            layers += self._block(channels, next_channels, downsample=n < n_layers, antialias=antialias)
            channels = next_channels
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    @staticmethod
    def _block(c_in: int, c_out: int, downsample: bool, antialias: bool, norm: bool = True) -> list[nn.Module]:
        """4×4 conv (+ instance norm) + LeakyReLU, halving the side when ``downsample``."""
        stride = 2 if downsample and not antialias else 1
        block = [nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1)]
        block += [_norm(c_out)] if norm else []
        block.append(nn.LeakyReLU(0.2, True))
        if downsample and antialias:
            block.append(BlurDownsample(c_out))
        return block

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


def check_dcgan_size(image_size: int) -> None:
    """Raise ``ValueError`` unless ``image_size`` is a side the DCGAN pair reaches: a power of two,
    doubling from the 4×4 stem at least once."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"DCGAN image size must be a power of two >= 8, got {image_size}")


def _dcgan_widths(image_size: int, base: int) -> list[int]:
    """Channel widths from the 4×4 stem to the last feature map before RGB, doubling per
    halving of resolution and capped at 8× ``base`` (DCGAN's 1024-512-256-128 at 64 px)."""
    check_dcgan_size(image_size)
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


class MinibatchStd(nn.Module):
    """Appends one feature map: how much the batch varies (Karras et al. 2018, ProGAN/StyleGAN).

    The batch is split into groups of up to :attr:`GROUP` images; the standard deviation of each
    feature over a group, averaged over channels and positions, becomes a constant extra channel
    of that group's images. D sees all-real and all-fake batches separately, so a generator that
    draws the same picture for every z hands D a near-zero channel and is penalised for it.
    """

    GROUP = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        group = max(g for g in range(1, min(self.GROUP, batch) + 1) if batch % g == 0)
        grouped = x.reshape(group, batch // group, channels, height, width)
        spread = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (batch // group,)
        feature = spread.repeat(group)[:, None, None, None].expand(batch, 1, height, width)
        return torch.cat([x, feature.to(x.dtype)], dim=1)


class DCGANDiscriminator(nn.Module):
    """(B, 3, S, S) → (B, 1, 1, 1) logit: stride-2 convolutions with LeakyReLU(0.2).

    Unlike the DCGAN paper, no batch norm: D scores all-real and all-fake batches separately,
    so batch norm would normalise away the batch-wide statistics (palette, brightness) that
    tell them apart (the README's DCGAN notes give the measurement). Spectral norm
    (``train.spectral_norm``) is the normalisation to use here; it also suits WGAN-GP.
    """

    def __init__(self, ndf: int = 64, image_size: int = 64, minibatch_std: bool = False):
        super().__init__()
        widths = _dcgan_widths(image_size, ndf)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        if minibatch_std:
            layers.append(MinibatchStd())
        layers.append(nn.Conv2d(widths[-1] + int(minibatch_std), 1, 4))
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
