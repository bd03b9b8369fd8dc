"""Inception-v3 pool features (2048-d), the feature space FID is measured in.

The standard FID weights cannot be downloaded on an offline machine. Until they are available
the network runs with seeded random weights, labelled :data:`RANDOM_INIT_LABEL` so the numbers
are never compared with published FIDs. Kaiming initialisation keeps the pool features alive;
torchvision's default truncated-normal init (std 0.1 → ~0.01 after its scaling) makes them ≈ 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import inception_v3

RANDOM_INIT_LABEL = "inception-v3-random-init"
INPUT_SIZE = 299


def _kaiming_init(net: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for layer in net.modules():
        if isinstance(layer, nn.Conv2d):
            fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1] // layer.groups
            with torch.no_grad():
                layer.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)


class InceptionFeatures(nn.Module):
    """Images in [-1, 1] of any size → (N, 2048) pool features of Inception-v3."""

    def __init__(self, seed: int = 0):
        super().__init__()
        net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        _kaiming_init(net, seed)
        net.fc = nn.Identity()
        net.dropout = nn.Identity()
        self.net = net.eval()
        self.label = f"{RANDOM_INIT_LABEL} (seed {seed}, kaiming normal)"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.net(x)


def extract_features(model: InceptionFeatures, images: torch.Tensor, batch_size: int = 16) -> np.ndarray:
    """Pool features of an (N, 3, H, W) image tensor, batched, as float64 numpy."""
    chunks = [model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat(chunks).double().numpy()
