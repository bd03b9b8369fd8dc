"""Procedural abstract paintings: the embedded data set's offline, synthetic painting domain.

These are synthetic stand-ins for real abstract art, not artworks. Each style is a pure function of
a NumPy random generator and a size, so a seed fixes every pixel. The styles are chosen to differ
clearly in colour, texture and geometry, so a GAN has a visible style to learn:

- ``grid``: black lines dividing a pale canvas into blocks, a few filled with red, blue or yellow.
- ``circles``: overlapping translucent circles, some with an inner ring, and straight strokes.
- ``fields``: two or three soft-edged, slightly mottled colour rectangles stacked on a dark ground.
- ``splatter``: flowing drips and drops of a few paints on a pale canvas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Colour = tuple[int, int, int]
Style = Callable[[np.random.Generator, int], Image.Image]

PRIMARIES: list[Colour] = [(214, 40, 40), (30, 70, 170), (245, 200, 20)]
INK: Colour = (15, 15, 15)


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> Colour:
    """A random RGB colour with every channel in ``[low, high)``."""
    red, green, blue = (int(c) for c in rng.integers(low, high, 3))
    return red, green, blue


def _cuts(rng: np.random.Generator, size: int) -> list[int]:
    """2 to 4 line positions across ``size``, at least ``size / 8`` apart, plus both borders."""
    slots = np.sort(rng.choice(np.arange(1, 8), size=int(rng.integers(2, 5)), replace=False))
    jitter = rng.integers(-size // 40, size // 40 + 1, len(slots))
    return [0, *(int(v) for v in slots * size // 8 + jitter), size]


def grid(rng: np.random.Generator, size: int) -> Image.Image:
    """Mondrian-like: black lines over an off-white canvas, some cells in red, blue or yellow."""
    image = Image.new("RGB", (size, size), (245, 243, 235))
    draw = ImageDraw.Draw(image)
    xs, ys = _cuts(rng, size), _cuts(rng, size)
    for x0, x1 in zip(xs, xs[1:]):
        for y0, y1 in zip(ys, ys[1:]):
            if rng.random() < 0.35:
                draw.rectangle([x0, y0, x1, y1], fill=PRIMARIES[int(rng.integers(len(PRIMARIES)))])
    width = max(2, size // 40)
    for x in xs[1:-1]:
        draw.line([(x, 0), (x, size)], fill=INK, width=width)
    for y in ys[1:-1]:
        draw.line([(0, y), (size, y)], fill=INK, width=width)
    return image


def circles(rng: np.random.Generator, size: int) -> Image.Image:
    """Kandinsky-like: translucent outlined circles (some with an inner ring) and thin strokes."""
    image = Image.new("RGB", (size, size), _colour(rng, 200, 250))
    overlay = Image.new("RGBA", (size, size))
    draw = ImageDraw.Draw(overlay)
    outline = max(1, size // 128)
    for _ in range(int(rng.integers(5, 10))):
        cx, cy = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 16, size // 4))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(*_colour(rng), 170), outline=(*INK, 255), width=outline)
        if rng.random() < 0.4:
            inner = r // 2
            draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=(*_colour(rng), 220))
    for _ in range(int(rng.integers(3, 7))):
        ends = [(int(x), int(y)) for x, y in rng.integers(0, size, (2, 2))]
        draw.line(ends, fill=(*_colour(rng, 0, 90), 255), width=max(1, size // 64))
    image.paste(overlay, mask=overlay)
    return image


def _mottle(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """Smooth low-frequency noise in ``[-strength, strength]``, shape ``(size, size, 1)``."""
    coarse = rng.uniform(0, 255, (6, 6)).astype(np.uint8)
    smooth = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    return (np.asarray(smooth, dtype=np.float32)[..., None] / 127.5 - 1.0) * strength


def fields(rng: np.random.Generator, size: int) -> Image.Image:
    """Rothko-like: 2-3 stacked soft-edged colour rectangles, gently mottled, on a dark ground."""
    image = Image.new("RGB", (size, size), _colour(rng, 20, 90))
    draw = ImageDraw.Draw(image)
    bands = int(rng.integers(2, 4))
    margin, gap = size // 10, size // 20
    height = (size - 2 * margin - (bands - 1) * gap) // bands
    base = rng.integers(80, 256, 3)
    for band in range(bands):
        top = margin + band * (height + gap)
        red, green, blue = (int(c) for c in np.clip(base + rng.integers(-80, 80, 3), 0, 255))
        draw.rectangle([margin, top, size - margin, top + height], fill=(red, green, blue))
    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(radius=size / 40)), dtype=np.float32)
    return Image.fromarray(np.clip(soft + _mottle(rng, size, 12.0), 0, 255).astype(np.uint8))


def _drip_path(rng: np.random.Generator, size: int) -> list[tuple[float, float]]:
    """A flowing curve: a walk whose heading turns a little at every step."""
    steps = int(rng.integers(15, 40))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, steps))
    step = size / 30
    points = rng.uniform(0, size, 2) + np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * step, 0)
    return [(float(x), float(y)) for x, y in points]


def splatter(rng: np.random.Generator, size: int) -> Image.Image:
    """Pollock-like: flowing drips and scattered drops of a few paints on a pale canvas."""
    image = Image.new("RGB", (size, size), _colour(rng, 215, 245))
    draw = ImageDraw.Draw(image)
    paints = [_colour(rng, 0, 200) for _ in range(int(rng.integers(3, 6)))]
    for _ in range(int(rng.integers(12, 20))):
        paint = paints[int(rng.integers(len(paints)))]
        width = int(rng.integers(1, max(2, size // 64) + 1))
        draw.line(_drip_path(rng, size), fill=paint, width=width, joint="curve")
    for _ in range(int(rng.integers(40, 90))):
        cx, cy = rng.uniform(0, size, 2)
        r = float(rng.exponential(size / 120)) + 0.5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=paints[int(rng.integers(len(paints)))])
    return image


STYLES: dict[str, Style] = {"grid": grid, "circles": circles, "fields": fields, "splatter": splatter}


def generate(n: int, size: int, seed: int) -> Iterator[tuple[str, Image.Image]]:
    """Yield ``n`` paintings named ``<style>_<index>``, cycling through the styles evenly.

    One generator seeded from ``seed`` (on its own stream, independent of the photo crops) draws
    every painting in order, so the whole set is a pure function of ``(n, size, seed)``.
    """
    rng = np.random.default_rng([seed, 1])
    names = list(STYLES)
    for index in range(n):
        style = names[index % len(names)]
        yield f"{style}_{index:04d}", STYLES[style](rng, size)
