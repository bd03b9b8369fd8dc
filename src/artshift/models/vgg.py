"""VGG-19 up to relu4_1: the frozen encoder of AdaIN (Huang & Belongie 2017).

The layers are torchvision's ``vgg19().features[:21]`` (3×3 convs with zero padding, ReLU,
2×2 max pools), under the same ``features.N`` names, so torchvision's ``vgg19-dcbb9e9d.pth``
loads as is (:func:`torchvision_features` checks its layout). Inputs are ArtShift's [-1, 1] RGB,
mapped to [0, 1] and normalised with the ImageNet mean and std the weights were trained with.
Without those weights (offline) the same layers get seeded Kaiming-normal weights
(:func:`random_vgg_state_dict`), and the encoder's ``label`` says so; the label travels in the
module's state, so checkpoints and generator files keep it. Modules here do no I/O.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision's VGG-19 configuration up to conv4_1: channels of each 3×3 conv, "M" a 2×2 max pool.
LAYERS: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512]
# Indices in ``features`` of relu1_1, relu2_1, relu3_1 and relu4_1: the style layers; the last is
# also the content layer AdaIN works on.
TAPS = (1, 6, 11, 20)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
POOLS = LAYERS.count("M")  # relu4_1 is 2**POOLS times smaller than the image
STANDARD_LABEL = "torchvision vgg19-dcbb9e9d"
RANDOM_INIT_LABEL = "vgg19-random-init"


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for spec in LAYERS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU()]
            channels = spec
    return nn.Sequential(*layers)


class VGGEncoder(nn.Module):
    """[-1, 1] RGB images → features at relu1_1, relu2_1, relu3_1 and relu4_1 (frozen).

    Any height and width of at least 2**:data:`POOLS` pixels; the last tap has
    :attr:`out_channels` channels at 1/8 of the input's side (rounded down).
    """

    out_channels = 512

    def __init__(self):
        super().__init__()
        self.features = _features()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.label = "unset"
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images + 1) / 2 - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                taps.append(x)
        return taps

    def load_weights(self, state_dict: dict[str, torch.Tensor], label: str) -> None:
        """Load ``features.N.weight``/``bias`` (as :func:`torchvision_features` returns them) and
        say which weights they are."""
        self.load_state_dict({**state_dict, "_extra_state": {"label": label}})

    def get_extra_state(self) -> dict[str, str]:
        return {"label": self.label}

    def set_extra_state(self, state: dict[str, str]) -> None:
        self.label = state["label"]


def torchvision_features(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's part of a torchvision VGG-19 state_dict (``features.N.weight``/``bias``
    for N < 21; the deeper layers and the classifier are dropped). A missing key or a wrong
    shape raises ``ValueError`` naming it."""
    expected = {name: tensor for name, tensor in VGGEncoder().state_dict().items() if name.startswith("features.")}
    for name, tensor in expected.items():
        if name not in state_dict:
            raise ValueError(f"not torchvision VGG-19 weights: no {name!r}")
        if state_dict[name].shape != tensor.shape:
            raise ValueError(f"not torchvision VGG-19 weights: {name!r} has shape {tuple(state_dict[name].shape)}, "
                             f"expected {tuple(tensor.shape)}")
    return {name: state_dict[name].float() for name in expected}


def random_vgg_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """Seeded Kaiming-normal conv weights and zero biases for :class:`VGGEncoder`: activations
    keep their scale through the layers, so random features still carry colour and texture
    statistics. Only used when the pretrained weights cannot be found or downloaded."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in VGGEncoder().state_dict().items():
        if name.endswith("weight"):
            state[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / tensor[0].numel()) ** 0.5
        elif name.endswith("bias"):
            state[name] = torch.zeros_like(tensor)
    return state
