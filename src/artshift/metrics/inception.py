"""The FID variant of Inception-v3: 2048-d pool3 features, as pytorch-fid computes them.

The FID network (converted from TensorFlow's 2015-12-05 graph) differs from torchvision's
Inception-v3 in four blocks: the average pools inside ``Mixed_5*``, ``Mixed_6b-e`` and
``Mixed_7b`` exclude the zero padding from the mean, and ``Mixed_7c`` max-pools instead. Module
names follow torchvision so the standard ``pt_inception-2015-12-05`` state_dict loads as is.

Without those weights (offline) the same network runs with seeded Kaiming-normal weights and is
labelled :data:`RANDOM_INIT_LABEL`; torchvision's default init (std ≈ 0.01 after its scaling)
would make the pool features ≈ 0 and carry no signal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import inception as tv

STANDARD_LABEL = "pt_inception-2015-12-05"
RANDOM_INIT_LABEL = "inception-v3-random-init"
INPUT_SIZE = 299
FEATURE_DIM = 2048


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tv.InceptionA):
    """InceptionA whose branch pool averages over real pixels only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_no_pad(x)),
        ], 1)


class FIDInceptionC(tv.InceptionC):
    """InceptionC whose branch pool averages over real pixels only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                     self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = conv(double)
        return torch.cat([self.branch1x1(x), seven, double, self.branch_pool(_avg_pool_no_pad(x))], 1)


class FIDInceptionE(tv.InceptionE):
    """InceptionE with the FID graph's pooling: padding-free average (7b) or max (7c)."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], 1)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        double = torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_no_pad(x)
        return torch.cat([self.branch1x1(x), three, double, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Images in [-1, 1] → (N, 2048) pool3 features.

    ``resize_input``: bilinearly resize to 299×299 first (pytorch-fid's way); turn it off when
    the caller already resized (clean-fid's PIL bicubic on uint8, see :mod:`artshift.metrics.features`).
    """

    def __init__(self, resize_input: bool = True):
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = tv.BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = tv.BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = tv.BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = tv.BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = tv.BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = tv.InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = tv.InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize_input:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def random_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """A seeded state_dict for :class:`FIDInceptionV3`: Kaiming-normal convs, identity batch norm.

    Keeps activations alive through the 90+ layers, so random-feature FID still separates
    distributions. Only used when the standard weights cannot be found or downloaded.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in FIDInceptionV3().state_dict().items():
        if name.endswith("conv.weight"):
            fan_in = tensor[0].numel()
            state[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        else:
            state[name] = tensor.clone()  # bn: weight 1, bias 0, running mean 0, running var 1
    return state


def _fold_batch_norms(net: nn.Module) -> None:
    """Fold each eval-mode batch norm into the convolution before it: same function, one op less."""
    for block in net.modules():
        if isinstance(block, tv.BasicConv2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = nn.Identity()


def build_inception(state_dict: dict[str, torch.Tensor], resize_input: bool = True) -> FIDInceptionV3:
    """The network in eval mode with ``state_dict`` loaded (the classifier ``fc.*`` is ignored).

    Batch norms are folded into the convolutions for speed (features change by ~1e-7).
    """
    net = FIDInceptionV3(resize_input=resize_input)
    net.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith("fc.")})
    net.eval().requires_grad_(False)
    _fold_batch_norms(net)
    return net


@torch.no_grad()
def extract_features(model: nn.Module, images: torch.Tensor, batch_size: int = 16) -> np.ndarray:
    """Pool features of an (N, 3, H, W) tensor in [-1, 1], batched on the model's device, as
    float64 numpy."""
    device = next(model.parameters()).device
    chunks = [model(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(chunks).double().numpy()
