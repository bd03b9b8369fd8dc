"""What a person meets in the browser: the upload page (``GET /``), its icon, a few example photos
to try, and the OpenAPI description of ``POST /v1/stylize`` that lets ``/docs`` send an image.

The examples are three small photographs bundled in ``artshift/examples/`` (from scikit-image's
sample data: ``coffee`` CC0 by Rachel Michetti, ``cat`` CC0 by Stefan van der Walt, ``rocket``
public domain by SpaceX), read into memory at start-up: ``/examples/<name>.jpg`` serves only
those names, never a file chosen by the request.
"""

from __future__ import annotations

import io
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, ImageDraw

HERE = Path(__file__).parent
PAGE = (HERE / "page.html").read_text()
EXAMPLES = {
    "coffee": "a cup of coffee (CC0, Rachel Michetti, from scikit-image)",
    "cat": "Chelsea the cat (CC0, Stefan van der Walt, from scikit-image)",
    "rocket": "a Falcon 9 launch (public domain, SpaceX, from scikit-image)",
}
ICON_COLOURS = ((231, 76, 60), (241, 196, 15), (52, 152, 219))
CACHE_A_DAY = {"Cache-Control": "public, max-age=86400"}

_BINARY = {"type": "string", "format": "binary"}
# POST /v1/stylize's request body and responses for /docs: the handler reads the raw body itself
# (to bound its size while it arrives), so FastAPI cannot infer them.
STYLIZE_OPENAPI = {
    "requestBody": {
        "required": True,
        "description": "The photo: the image file's bytes as the body (any image/* type: PNG, JPEG, WebP, "
                       "TIFF, BMP, GIF), or a multipart form with the image in the field `file`. An AdaIN "
                       "model needs the multipart form, with the painting whose style to copy in `style` "
                       "and optionally `alpha` (0 the photo, 1 the full style).",
        "content": {
            "image/*": {"schema": _BINARY},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "properties": {"file": _BINARY, "style": _BINARY,
                                                              "alpha": {"type": "number", "minimum": 0,
                                                                        "maximum": 1}}}},
        },
    },
}
_ERROR = {"content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}}
STYLIZE_RESPONSES = {
    200: {"description": "The stylised image, the same width and height as the photo (PNG, or JPEG with "
                         "?format=jpeg).",
          "content": {"image/png": {"schema": _BINARY}, "image/jpeg": {"schema": _BINARY}}},
    400: {"description": "Empty body, bad format or malformed multipart upload.", **_ERROR},
    408: {"description": "The body did not arrive within the body timeout.", **_ERROR},
    413: {"description": "Over a limit (body size, pixels, side, aspect, tiles, time budget).", **_ERROR},
    415: {"description": "Not a supported image.", **_ERROR},
    503: {"description": "Busy: too many requests waiting; retry after Retry-After seconds.", **_ERROR},
}


def favicon_png(size: int = 32) -> bytes:
    """The service's icon, drawn at start-up: three overlapping coloured discs on a dark square."""
    scale = 4  # drawn large and scaled down: smooth edges
    icon = Image.new("RGB", (size * scale, size * scale), (34, 34, 34))
    draw = ImageDraw.Draw(icon)
    radius = size * scale * 0.3
    for (x, y), colour in zip(((0.36, 0.38), (0.64, 0.38), (0.5, 0.64)), ICON_COLOURS):
        cx, cy = x * size * scale, y * size * scale
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    buffer = io.BytesIO()
    icon.resize((size, size), Image.Resampling.LANCZOS).save(buffer, format="PNG")
    return buffer.getvalue()


def add_page_routes(app: FastAPI) -> None:
    """``GET /`` (the page), ``/favicon.ico``, ``/examples`` (a JSON list) and ``/examples/<name>.jpg``."""
    photos = {name: (HERE / "examples" / f"{name}.jpg").read_bytes() for name in EXAMPLES}
    icon = favicon_png()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(icon, media_type="image/png", headers=CACHE_A_DAY)

    @app.get("/examples", summary="Example photos to try")
    async def examples() -> list[dict[str, str]]:
        return [{"name": name, "url": f"/examples/{name}.jpg", "credit": credit} for name, credit in EXAMPLES.items()]

    @app.get("/examples/{name}.jpg", summary="One example photo (JPEG)",
             responses={200: {"content": {"image/jpeg": {"schema": _BINARY}}}, 404: _ERROR})
    async def example(name: str) -> Response:
        if name not in photos:
            return JSONResponse({"error": f"no example named {name!r}; GET /examples lists them"}, status_code=404)
        return Response(photos[name], media_type="image/jpeg", headers=CACHE_A_DAY)
