"""Procedural abstract paintings: the embedded data set's offline, synthetic painting domain.

Four styles, each a pure function of a NumPy random generator and a size, so a seed fixes every
pixel. They are synthetic stand-ins for real abstract art, chosen to differ clearly in colour,
texture and geometry so a GAN has a visible style to learn:

- ``grid``: black lines dividing a canvas into blocks, a few filled with primary colours.
- ``circles``: overlapping translucent circles and straight strokes on a warm ground.
- ``fields``: two or three soft-edged stacked colour rectangles over a dark ground.
- ``splatter``: thin wandering drips and drops of paint on a pale canvas.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PRIMARIES = [(214, 40, 40), (30, 70, 170), (245, 200, 20), (250, 250, 245)]


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, 3))


def grid(rng: np.random.Generator, size: int) -> Image.Image:
    """Mondrian-like: black lines over white, some cells in red, blue or yellow."""
    image = Image.new("RGB", (size, size), (245, 243, 235))
    draw = ImageDraw.Draw(image)
    xs = sorted({0, size, *rng.integers(size // 10, size - size // 10, rng.integers(2, 5)).tolist()})
    ys = sorted({0, size, *rng.integers(size // 10, size - size // 10, rng.integers(2, 5)).tolist()})
    for x0, x1 in zip(xs, xs[1:]):
        for y0, y1 in zip(ys, ys[1:]):
            if rng.random() < 0.35:
                draw.rectangle([x0, y0, x1, y1], fill=PRIMARIES[rng.integers(0, 3)])
    width = max(2, size // 40)
    for x in xs[1:-1]:
        draw.line([(x, 0), (x, size)], fill=(15, 15, 15), width=width)
    for y in ys[1:-1]:
        draw.line([(0, y), (size, y)], fill=(15, 15, 15), width=width)
    return image


def circles(rng: np.random.Generator, size: int) -> Image.Image:
    """Kandinsky-like: translucent circles and thin strokes on a warm ground."""
    image = Image.new("RGB", (size, size), _colour(rng, 200, 250))
    overlay = Image.new("RGBA", (size, size))
    draw = ImageDraw.Draw(overlay)
    for _ in range(rng.integers(5, 10)):
        cx, cy = rng.integers(0, size, 2)
        r = int(rng.integers(size // 16, size // 4))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(*_colour(rng), 170),
                     outline=(20, 20, 20, 255), width=max(1, size // 128))
    for _ in range(rng.integers(3, 7)):
        points = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2)]
        draw.line(points, fill=(*_colour(rng, 0, 90), 255), width=max(1, size // 64))
    image.paste(overlay, mask=overlay)
    return image


def fields(rng: np.random.Generator, size: int) -> Image.Image:
    """Rothko-like: stacked soft-edged colour rectangles over a dark ground."""
    image = Image.new("RGB", (size, size), _colour(rng, 20, 90))
    draw = ImageDraw.Draw(image)
    bands = int(rng.integers(2, 4))
    margin, gap = size // 10, size // 20
    height = (size - 2 * margin - (bands - 1) * gap) // bands
    base = rng.integers(80, 256, 3)
    for band in range(bands):
        top = margin + band * (height + gap)
        tint = np.clip(base + rng.integers(-80, 80, 3), 0, 255)
        draw.rectangle([margin, top, size - margin, top + height], fill=tuple(int(c) for c in tint))
    return image.filter(ImageFilter.GaussianBlur(radius=size / 40))


def splatter(rng: np.random.Generator, size: int) -> Image.Image:
    """Pollock-like: wandering drips and drops of a few paints on a pale canvas."""
    image = Image.new("RGB", (size, size), _colour(rng, 215, 245))
    draw = ImageDraw.Draw(image)
    paints = [_colour(rng, 0, 200) for _ in range(rng.integers(3, 6))]
    for _ in range(rng.integers(12, 20)):
        paint = paints[rng.integers(len(paints))]
        steps = np.cumsum(rng.normal(0, size / 25, (int(rng.integers(8, 30)), 2)), axis=0)
        path = [tuple(float(v) for v in p) for p in (rng.uniform(0, size, 2) + steps)]
        draw.line(path, fill=paint, width=int(rng.integers(1, max(2, size // 64) + 1)), joint="curve")
    for _ in range(rng.integers(40, 90)):
        cx, cy = rng.uniform(0, size, 2)
        r = float(rng.exponential(size / 120)) + 0.5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=paints[rng.integers(len(paints))])
    return image


STYLES: dict[str, Callable[[np.random.Generator, int], Image.Image]] = {
    "grid": grid, "circles": circles, "fields": fields, "splatter": splatter,
}


def generate(n: int, size: int, seed: int) -> list[tuple[str, Image.Image]]:
    """``n`` paintings cycling through the styles evenly, named ``<style>_<index>``."""
    rng = np.random.default_rng([seed, 1])  # stream 1: independent of the photo crops
    names = list(STYLES)
    out = []
    for index in range(n):
        style = names[index % len(names)]
        out.append((f"{style}_{index:04d}", STYLES[style](rng, size)))
    return out
