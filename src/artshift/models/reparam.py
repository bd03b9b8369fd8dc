"""Exact re-parameterisations of a trained ResnetGenerator that run faster in ONNX Runtime.

The trained network is kept as it is; export rewrites three kinds of layers into mathematically
equal forms (same outputs up to float summation order) that ONNX Runtime's CPU kernels handle
better, as its profiler showed (the README's Benchmarks section has the numbers):

* the last ReflectionPad(3) + 7×7 conv to 3 channels is padded to 16 output channels by ORT's
  blocked (NCHWc) kernels, so 5/6 of its work is wasted. Computing the 4×4 output phases at once
  as one 10×10 stride-4 conv to 48 channels, then DepthToSpace, avoids that waste;
* ConvTranspose has no int8 kernel, so a quantised model runs it in float between dequantise and
  quantise nodes. As a 2×2 conv to 4× the channels + DepthToSpace (sub-pixel convolution) it
  quantises like every other conv. In fp32 the plain ConvTranspose is faster, so this rewrite
  is only used for the int8 model;
* an anti-aliased upsampling step (bilinear ×2, then a conv) gets a 1×1 max pool, the identity,
  in front, in the float model only. ORT's CPU optimiser runs convs and pools in its blocked
  (NCHWc) layout, and a bilinear Resize only when its input already is; the instance norm before
  every upsampling is not, so the Resize ran in plain NCHW, where ORT's kernel is about 3× slower,
  and the conv after it reordered a 4× larger tensor. The pool starts the blocked layout first.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from artshift.models.networks import ResnetGenerator

OUTPUT_STRIDE = 4  # output phases computed per position by the strided output conv


def _phase_conv(phases: torch.Tensor, bias: torch.Tensor, stride: int = 1) -> nn.Conv2d:
    """A conv computing every output phase as its own channel: ``phases`` has shape
    (C_out, *phase grid, C_in, k, k), and each original bias is repeated once per phase."""
    out_channels, in_channels, size = phases.shape[0], phases.shape[-3], phases.shape[-1]
    per_phase = phases[0, ..., 0, 0, 0].numel()
    conv = nn.Conv2d(in_channels, out_channels * per_phase, size, stride=stride)
    conv.weight.data.copy_(phases.reshape(conv.weight.shape))
    conv.bias.data.copy_(bias.detach().repeat_interleave(per_phase))
    return conv


class StridedOutputConv(nn.Module):
    """ReflectionPad(p) + k×k conv (stride 1) as ReflectionPad(p) + (k+s-1)² stride-s conv to
    s²× the channels + pixel shuffle, s = :data:`OUTPUT_STRIDE`. Output phase (a, b) of each
    s×s block is the original kernel placed at offset (a, b) inside the larger kernel."""

    def __init__(self, pad: nn.ReflectionPad2d, conv: nn.Conv2d):
        super().__init__()
        stride, size = OUTPUT_STRIDE, conv.kernel_size[0]
        weight = conv.weight.detach()
        out_channels, in_channels = weight.shape[:2]
        window = size + stride - 1
        phases = weight.new_zeros(out_channels, stride, stride, in_channels, window, window)
        for a in range(stride):
            for b in range(stride):
                phases[:, a, b, :, a:a + size, b:b + size] = weight
        self.pad = pad
        self.conv = _phase_conv(phases, conv.bias, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(self.pad(x)), OUTPUT_STRIDE)


class SubpixelUpsample(nn.Module):
    """ConvTranspose2d(kernel 3, stride 2, padding 1, output_padding 1) as a 2×2 conv over the
    input (zero-padded by one on the right and bottom) to 4× the channels + pixel shuffle.

    An even output row 2m takes kernel row 1 at input row m; an odd one 2m+1 takes kernel row 2
    at input m and kernel row 0 at input m+1 (and likewise for columns).
    """

    TAPS = {(0, 0): 1, (1, 0): 2, (1, 1): 0}  # (output phase, input offset) → kernel index

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        weight = deconv.weight.detach()  # (C_in, C_out, 3, 3)
        in_channels, out_channels = weight.shape[:2]
        phases = weight.new_zeros(out_channels, 2, 2, in_channels, 2, 2)
        for (a, t), k in self.TAPS.items():
            for (b, u), j in self.TAPS.items():
                phases[:, a, b, :, t, u] = weight[:, :, k, j].T
        self.conv = _phase_conv(phases, deconv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(F.pad(x, (0, 1, 0, 1))), 2)


class BlockedLayoutUpsample(nn.Module):
    """An anti-aliased upsampling step (bilinear ×2 + conv) behind a 1×1 max pool: the same
    function, with the Resize in ONNX Runtime's blocked layout (see the module docstring)."""

    def __init__(self, upsampling: nn.Sequential):
        super().__init__()
        self.upsampling = upsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampling(F.max_pool2d(x, kernel_size=1))


def _is_bilinear_upsampling(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Sequential) and isinstance(layer[0], nn.Upsample) and layer[0].mode == "bilinear"


class ReparamGenerator(nn.Module):
    """A ResnetGenerator's layers with the rewrites above applied; same function, no training."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    # Not an nn.Sequential: export's dynamic shapes name the input ``x``, as ResnetGenerator does.
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def reparameterise(generator: nn.Module, int8: bool = False) -> nn.Module:
    """The inference form of ``generator`` for export: a ResnetGenerator with its output conv
    rewritten, and its transposed convs (the form to quantise, ``int8``) or its bilinear
    upsampling steps (the float form) too; any other network as is."""
    if not isinstance(generator, ResnetGenerator):
        return generator
    source = copy.deepcopy(generator).eval()
    layers, out = list(source.layers), []
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, nn.ReflectionPad2d) and len(layers) >= 2 and isinstance(layers[1], nn.Tanh):
            out.append(StridedOutputConv(layer, layers.pop(0)))
        elif int8 and isinstance(layer, nn.ConvTranspose2d):
            out.append(SubpixelUpsample(layer))
        elif not int8 and _is_bilinear_upsampling(layer):
            out.append(BlockedLayoutUpsample(layer))
        else:
            out.append(layer)
    return ReparamGenerator(out).eval()
