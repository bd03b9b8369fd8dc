"""Checkerboard artefacts as a number: the share of an image's spectral energy at the 2-pixel period.

A stride-2 transposed convolution stamps its kernel with uneven overlap, which leaves a
pattern repeating every 2 pixels (Odena et al. 2016). In the Fourier domain that pattern is
energy at the Nyquist frequency: at (½, 0), (0, ½) and (½, ½) cycles per pixel, spread a little
around those points because the pattern's strength follows the image content. Photos and
paintings have almost no energy there (natural spectra fall off as 1/f²), so a generator's
share divided by its input photos' share says how much checkerboard it adds: about 1 for a
clean output, tens or more for a visible grid.
"""

from __future__ import annotations

import torch

from artshift.metrics.content import grayscale

NYQUIST_POINTS = ((0.5, 0.0), (0.0, 0.5), (0.5, 0.5))  # (vertical, horizontal) frequency, cycles/pixel
RADIUS = 1 / 16  # cycles/pixel around each point counted as "2-pixel period" (8 bins at 128 px)


def _wrapped_distance(freqs: torch.Tensor, point: float) -> torch.Tensor:
    """Distance on the frequency circle [-½, ½), where +½ and -½ are the same frequency."""
    d = (freqs - point).abs() % 1.0
    return torch.minimum(d, 1.0 - d)


def nyquist_mask(height: int, width: int, radius: float = RADIUS) -> torch.Tensor:
    """(H, W) boolean mask of the FFT bins within ``radius`` of a 2-pixel-period frequency."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(width, dtype=torch.float64)[None, :]
    mask = torch.zeros(height, width, dtype=torch.bool)
    for py, px in NYQUIST_POINTS:
        mask |= _wrapped_distance(fy, py) ** 2 + _wrapped_distance(fx, px) ** 2 <= radius ** 2
    return mask


def checkerboard_share(images: torch.Tensor, radius: float = RADIUS) -> torch.Tensor:
    """Per image of (N, 3, H, W) in [-1, 1]: the fraction of the luma's AC spectral energy that
    lies within ``radius`` of the 2-pixel-period frequencies.

    The mean is removed (no DC) and a Hann window tapers the borders first, so the jump between
    opposite edges of a non-periodic image does not leak energy up to Nyquist.
    """
    luma = grayscale(images.double())[:, 0]
    luma = luma - luma.mean(dim=(1, 2), keepdim=True)
    height, width = luma.shape[-2:]
    window = torch.outer(torch.hann_window(height, periodic=False, dtype=torch.float64),
                         torch.hann_window(width, periodic=False, dtype=torch.float64))
    power = torch.fft.fft2(luma * window).abs() ** 2
    total = power.sum(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)
    return power[:, nyquist_mask(height, width, radius)].sum(dim=1) / total


def checkerboard_scores(images: torch.Tensor, photos: torch.Tensor | None) -> dict[str, float]:
    """``checkerboard``: the mean 2-pixel-period energy share of ``images``; with the ``photos``
    they translate also ``checkerboard_vs_photo``, that share over the photos' (1 = none added)."""
    share = float(checkerboard_share(images).mean())
    if photos is None:
        return {"checkerboard": share}
    return {"checkerboard": share, "checkerboard_vs_photo": share / float(checkerboard_share(photos).mean())}
