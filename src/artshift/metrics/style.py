"""How close each stylised image is to its own style image: AdaIN's style loss as a score.

The mean and std of each channel of VGG features at relu1_1 … relu4_1 of the image against
those of the style image it was given (:func:`artshift.losses.style_distance`), averaged over
the images: the number a photo-and-style generator is trained to lower, measured the same way
for the baselines (the unstylised photo, Reinhard matched to the same painting). 0 = the same
feature statistics as the style image.
"""

from __future__ import annotations

import torch
from torch import nn

from artshift.losses import style_distance


@torch.no_grad()
def mean_style_distance(encoder: nn.Module, images: torch.Tensor, styles: torch.Tensor, batch_size: int = 16) -> float:
    """Mean over ``images`` of the style distance to ``styles[i]`` (both (N, 3, ·, ·) in [-1, 1],
    sizes may differ) on ``encoder``'s feature taps, in batches on the encoder's device."""
    if len(images) != len(styles):
        raise ValueError(f"need one style image per image, got {len(images)} and {len(styles)}")
    device = next(encoder.parameters()).device
    distances = [style_distance(encoder(images[i:i + batch_size].to(device)),
                                encoder(styles[i:i + batch_size].to(device))).cpu()
                 for i in range(0, len(images), batch_size)]
    return float(torch.cat(distances).mean())
