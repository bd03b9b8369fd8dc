"""HTTP service: the exported generator behind FastAPI (``artshift serve``).

- ``POST /v1/stylize``: an image as the request body (or a multipart ``file`` field) → the
  stylised image, PNG by default or JPEG with ``?format=jpeg``.
- ``GET /healthz``: liveness plus the model (its registry version and MLflow run) and execution provider.
- ``GET /``: a small page to upload a photo and see it before and after, side by side.

The model is loaded once. At most ``concurrency`` images are stylised at a time, at most
``queue`` more wait; beyond that the service answers 503 instead of piling up work. Bodies over
``max_body_bytes`` get 413, non-images 415, decompression bombs 413 — never a 500. The
service writes no files.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from artshift.errors import ImageError, ImageTooLarge
from artshift.generator_io import ModelRef
from artshift.images import decode_rgb
from artshift.inference import Stylizer
from artshift.log import get_logger

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
PAGE = (Path(__file__).parent / "page.html").read_text()
log = get_logger("serve")


class _Full(Exception):
    """The wait queue is full."""


class Gate:
    """Bounded concurrency with a bounded wait queue."""

    def __init__(self, concurrency: int, queue: int):
        self.running = asyncio.Semaphore(concurrency)
        self.capacity = concurrency + queue
        self.admitted = 0

    async def __aenter__(self) -> None:
        if self.admitted >= self.capacity:
            raise _Full
        self.admitted += 1
        await self.running.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.running.release()
        self.admitted -= 1


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes | JSONResponse:
    """The upload's bytes (raw body or multipart ``file``), or a 413 beyond ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _error(413, f"request body over the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _error(413, f"request body over the {limit} byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _multipart_file(request, body)
    return body


async def _multipart_file(request: Request, body: bytes) -> bytes | JSONResponse:
    # Re-parse the already size-checked body; the upload's file name is ignored.
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return _error(400, "multipart upload needs a 'file' field")
    return await upload.read()


def _encode(image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if fmt == "jpeg" else "PNG", **({"quality": 95} if fmt == "jpeg" else {}))
    return buffer.getvalue()


def create_app(model_path: str | Path, max_body_bytes: int = 20 * 2**20, concurrency: int = 1, queue: int = 16,
               threads: int = 0, max_pixels: int = 16_000_000, model_ref: ModelRef | None = None) -> FastAPI:
    """The FastAPI app serving ``model_path`` (loaded now, once); ``model_ref`` says where it came
    from (an MLflow registry version) for ``/healthz`` and the start-up line."""
    stylizer = Stylizer(model_path, threads=threads)
    loaded = model_ref or ModelRef(Path(model_path), Path(model_path).name)
    log.info("serving %s on %s", loaded.describe(stylizer.metadata), stylizer.provider)
    gate = Gate(concurrency, queue)

    def process(body: bytes):
        return stylizer.stylize(decode_rgb(body, "upload", max_pixels=max_pixels))

    app = FastAPI(title="ArtShift", version="1", docs_url="/docs")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": loaded.name, "version": loaded.version,
                "run_id": loaded.run(stylizer.metadata), "provider": stylizer.provider}

    @app.post("/v1/stylize")
    async def stylize(request: Request, format: str = "png") -> Response:
        if format not in MEDIA_TYPES:
            return _error(400, f"format must be one of {sorted(MEDIA_TYPES)}, got {format!r}")
        body = await _read_body(request, max_body_bytes)
        if isinstance(body, Response):
            return body
        if not body:
            return _error(400, "empty request body: send an image")
        try:
            async with gate:
                result = await run_in_threadpool(process, body)
        except _Full:
            return JSONResponse({"error": "busy: too many requests waiting"}, status_code=503,
                                headers={"Retry-After": "1"})
        except ImageTooLarge as exc:
            return _error(413, str(exc))
        except ImageError as exc:
            return _error(415, str(exc))
        return Response(_encode(result, format), media_type=MEDIA_TYPES[format])

    return app


def serve(model_path: str | Path, host: str, port: int, **options: int | ModelRef) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model_path, **options), host=host, port=port, log_level="info")
