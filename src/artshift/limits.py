"""What one request to the HTTP service may cost: the defaults of ``artshift serve``'s flags.

Kept apart from :mod:`artshift.serve` so the CLI can show them without importing the web stack.
The defaults suit the 2-core CPU this project is measured on (a 1024 px tile takes 2–4 s there);
raise them on a bigger machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from artshift.images import SizeLimits


@dataclass(frozen=True)
class Limits:
    """Bounds on one request's body, image, work and time (README, "HTTP service")."""

    max_body_bytes: int = 20 * 2**20
    # Checked on the image header, before anything is decoded.
    size: SizeLimits = field(default_factory=lambda: SizeLimits(max_pixels=16_000_000, max_side=8192, max_aspect=8.0))
    max_tiles: int = 20  # model runs per image: a 4000×3000 photo takes 20 tiles of 1024 px
    time_budget_s: float = 60.0  # stylising time of one image, checked before each tile
    header_timeout_s: float = 10.0  # from connecting (or the previous response) to complete headers
    body_timeout_s: float = 60.0  # from the headers to the whole body


DEFAULT_LIMITS = Limits()
