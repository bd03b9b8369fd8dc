"""HTTP service: the exported generator behind FastAPI (``artshift serve``).

- ``POST /v1/stylize``: an image as the request body (or a multipart ``file`` field) → the
  stylised image, PNG by default or JPEG with ``?format=jpeg``.
- ``GET /healthz``: liveness plus the model (its registry version and MLflow run), execution
  provider and the worker process that answered; it touches neither the model nor the queue.
- ``GET /metrics``: Prometheus metrics (:mod:`artshift.serve_metrics`), all workers added up.
- ``GET /``: a page to upload, drop or pick an example photo, see it before and after and download
  the result (:mod:`artshift.page`, with ``/favicon.ico`` and ``/examples``); ``GET /docs``: the API.
- For an AdaIN model, ``POST /v1/stylize`` also needs the painting whose style to copy (multipart
  ``style`` field) and takes ``alpha`` (form field or query); ``GET /v1/styles`` lists a gallery
  of style images, each served by index (``/v1/styles/{i}``, ``/v1/styles/{i}/thumbnail``).

The model is loaded once per worker process (``--workers N``: N processes sharing one listening
socket, each with its own ONNX Runtime session of at most cores / N threads). In each worker at
most ``concurrency`` images are stylised at a time and at most ``queue`` more wait; beyond that
the service answers 503 instead of piling up work. What one
request may cost is bounded by :class:`Limits`: its body (413), its image's pixels, side,
aspect ratio and tiles, all checked before any work (413), and its stylising time (413 once
over the budget); non-images get 415 — never a 500. Request headers and bodies that arrive
too slowly are cut off (the connection closed; 408). Nothing a request sends reaches a file:
uploads, multipart ones included, are parsed in memory within the body limit (the only files are
the workers' metric files, see :mod:`artshift.serve_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

import h11
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import Gauge
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors.multiprocess import Multiprocess

from artshift.errors import ArtShiftError, ImageError, ImageTooLarge
from artshift.gallery import Gallery
from artshift.generator_io import ModelRef
from artshift.images import decode_rgb
from artshift.inference import DEFAULT_TILE, StyleTransfer, open_photo_model
from artshift.limits import DEFAULT_LIMITS, Limits
from artshift.log import get_logger
from artshift.page import STYLIZE_OPENAPI, STYLIZE_RESPONSES, add_page_routes
from artshift.serve_metrics import MetricsMiddleware, ServiceMetrics, shared_metrics_folder

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
log = get_logger("serve")


class _Full(Exception):
    """The wait queue is full."""


class Gate:
    """Bounded concurrency with a bounded wait queue; ``waiting`` and ``busy`` gauges follow it."""

    def __init__(self, concurrency: int, queue: int, waiting: Gauge, busy: Gauge):
        self.running = asyncio.Semaphore(concurrency)
        self.capacity = concurrency + queue
        self.admitted = 0
        self.waiting, self.busy = waiting, busy

    async def __aenter__(self) -> None:
        if self.admitted >= self.capacity:
            raise _Full
        self.admitted += 1
        self.waiting.inc()
        try:
            await self.running.acquire()
        except BaseException:  # cancelled while waiting: it leaves the queue
            self.admitted -= 1
            raise
        finally:
            self.waiting.dec()
        self.busy.inc()

    async def __aexit__(self, *exc: object) -> None:
        self.busy.dec()
        self.running.release()
        self.admitted -= 1


def _error(status: int, message: str, close: bool = False) -> JSONResponse:
    """A JSON error; ``close`` ends the connection after it (the client may still be sending)."""
    return JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"} if close else None)


async def _read_body(request: Request, limits: Limits) -> Upload | Response:
    """The upload (a raw body, or multipart ``file``, ``style`` and ``alpha``), or the error
    response: 413 beyond the size limit (both images together), 408 when the body takes longer
    than the body timeout."""
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _error(413, f"request body over the {limit} byte limit", close=True)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return _error(413, f"request body over the {limit} byte limit", close=True)
                chunks.append(chunk)
    except TimeoutError:
        log.info(f"upload from {_client(request)} cut off: body not complete within {limits.body_timeout_s:g} s")
        return _error(408, f"request body not complete within {limits.body_timeout_s:g} s", close=True)
    except ClientDisconnect:
        log.info(f"upload from {_client(request)} abandoned: client disconnected after {size} bytes")
        return _error(400, "client disconnected during the upload")
    body = b"".join(chunks)
    content_type = request.headers.get("content-type", "")
    return _multipart_upload(content_type, body) if content_type.startswith("multipart/form-data") else Upload(body)


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "a client"


class _FormParts:
    """python-multipart callbacks that keep each part's headers and data in memory."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytearray]] = []
        self._name, self._value = b"", b""

    def on_part_begin(self) -> None:
        self.parts.append(({}, bytearray()))

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self.parts[-1][0][self._name.lower()] = self._value
        self._name, self._value = b"", b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1][1].extend(data[start:end])

    def field(self, name: bytes) -> bytes | None:
        """The data of the part named ``name`` (its Content-Disposition), if there is one."""
        for headers, data in self.parts:
            if parse_options_header(headers.get(b"content-disposition", b""))[1].get(b"name") == name:
                return bytes(data)
        return None


def _multipart_upload(content_type: str, body: bytes) -> Upload | Response:
    """The ``file`` (photo), ``style`` and ``alpha`` fields of a multipart body, parsed in memory
    (the uploads' file names are ignored)."""
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        return _error(400, "multipart upload without a boundary")
    form = _FormParts()
    callbacks = ("on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_part_data")
    parser = MultipartParser(boundary, {name: getattr(form, name) for name in callbacks})
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        return _error(400, f"malformed multipart upload ({exc})")
    photo, alpha = form.field(b"file"), form.field(b"alpha")
    if photo is None:
        return _error(400, "multipart upload needs a 'file' field")
    return Upload(photo, form.field(b"style"), None if alpha is None else alpha.decode("utf-8", "replace"))


@dataclass(frozen=True)
class Upload:
    """What one request sends: the photo and, for an AdaIN model, the style image and the text of
    its ``alpha`` form field."""

    photo: bytes
    style: bytes | None = None
    alpha: str | None = None


def _style_alpha(upload: Upload, query_alpha: str | None, takes_style: bool) -> float | Response:
    """The alpha of a request (the form field, else the query parameter, else 1), or a 400: a
    style or alpha sent to a one-style model, an AdaIN model without a style, alpha outside [0, 1]."""
    text = upload.alpha if upload.alpha is not None else query_alpha
    if not takes_style:
        if upload.style is not None or text is not None:
            return _error(400, "this model repaints in the one style it learned: it takes no 'style' image or 'alpha'")
        return 1.0
    if not upload.style:
        return _error(400, "this model (AdaIN) needs a style image: send a multipart upload with the photo as "
                           "'file' and the painting as 'style'")
    try:
        alpha = 1.0 if text is None else float(text)
    except ValueError:
        alpha = float("nan")
    if not 0 <= alpha <= 1:
        return _error(400, f"alpha must be a number in [0, 1] (0 the photo, 1 the full style), got {text!r}")
    return alpha


def _encode(image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if fmt == "jpeg" else "PNG", **({"quality": 95} if fmt == "jpeg" else {}))
    return buffer.getvalue()


def _budget(limits: Limits) -> Callable[[int, int], None]:
    """A ``before_tile`` check that stops a stylisation once it is over the time budget."""
    deadline = monotonic() + limits.time_budget_s

    def before_tile(done: int, total: int) -> None:
        if monotonic() > deadline:
            raise ImageTooLarge(f"upload: stylising took over the {limits.time_budget_s:g} s time budget "
                                f"({done} of {total} tiles done); send a smaller image")

    return before_tile


def create_app(model_path: str | Path, limits: Limits = DEFAULT_LIMITS, concurrency: int = 1, queue: int = 16,
               threads: int = 0, tile: int = DEFAULT_TILE, model_ref: ModelRef | None = None,
               styles: Path | None = None) -> FastAPI:
    """The FastAPI app serving ``model_path`` (loaded now, once); ``model_ref`` says where it came
    from (an MLflow registry version) for ``/healthz`` and the start-up line; ``styles`` is the
    folder of the style gallery offered with an AdaIN model."""
    stylizer = open_photo_model(model_path, threads=threads, tile=tile)
    loaded = model_ref or stylizer.ref
    log.info("serving %s on %s (process %d, %s threads)", loaded.describe(stylizer.metadata), stylizer.provider,
             os.getpid(), threads or "all")
    metrics = ServiceMetrics(loaded.name, loaded.version, loaded.run(stylizer.metadata), stylizer.provider)
    gate = Gate(concurrency, queue, metrics.queue_depth, metrics.in_progress)
    takes_style = isinstance(stylizer, StyleTransfer)
    gallery = Gallery(styles if takes_style else None, stylizer.prepare_style if takes_style else lambda i: i)
    if gallery.paths:
        log.info("style gallery: %d of the %d images in %s", len(gallery.paths), gallery.total, gallery.folder)

    def process(upload: Upload, alpha: float):
        image = decode_rgb(upload.photo, "upload", limits.size)
        if takes_style:  # one pass, bounded by --tile (AdaIN's statistics are global: no tiles)
            stylizer.check_photo(*image.size, "upload", hint="send a smaller image")
            return stylizer.stylize(image, decode_rgb(upload.style, "style", limits.size), alpha)
        tiles = stylizer.tile_count(*image.size)
        if tiles > limits.max_tiles:
            raise ImageTooLarge(f"upload: image too large to stylise ({image.width}x{image.height} takes {tiles} "
                                f"tiles of {stylizer.tile} px, limit {limits.max_tiles})")
        return stylizer.stylize(image, _budget(limits))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        metrics.worker_exit()

    app = FastAPI(title="ArtShift", version="1", docs_url="/docs", lifespan=lifespan,
                  description="Repaints photos in a learned abstract-painting style. The page at / uses this API.")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    add_page_routes(app)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": loaded.name, "version": loaded.version,
                "run_id": loaded.run(stylizer.metadata), "provider": stylizer.provider, "worker": os.getpid()}

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        body, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    @app.post("/v1/stylize", summary="Repaint a photo", openapi_extra=STYLIZE_OPENAPI, responses=STYLIZE_RESPONSES,
              response_class=Response)
    async def stylize(request: Request, format: str = Query("png", description="png or jpeg",
                                                            json_schema_extra={"enum": list(MEDIA_TYPES)}),
                      alpha: str | None = Query(None, description="AdaIN models: 0 keeps the photo, 1 (default) "
                                                "the full style; a form field 'alpha' wins")) -> Response:
        if format not in MEDIA_TYPES:
            return _error(400, f"format must be one of {sorted(MEDIA_TYPES)}, got {format!r}")
        upload = await _read_body(request, limits)
        if isinstance(upload, Response):
            return upload
        if not upload.photo:
            return _error(400, "empty request body: send an image")
        mix = _style_alpha(upload, alpha, takes_style)
        if isinstance(mix, Response):
            return mix
        try:
            async with gate:
                result = await run_in_threadpool(process, upload, mix)
        except _Full:
            return JSONResponse({"error": "busy: too many requests waiting"}, status_code=503,
                                headers={"Retry-After": "1"})
        except ImageTooLarge as exc:
            return _error(413, str(exc))
        except ImageError as exc:
            return _error(415, str(exc))
        return Response(_encode(result, format), media_type=MEDIA_TYPES[format])

    _add_style_routes(app, gallery, takes_style)
    return app


def _add_style_routes(app: FastAPI, gallery: Gallery, takes_style: bool) -> None:
    """``GET /v1/styles`` (whether the model takes a style, and the gallery) and each listed
    style's image and thumbnail, by index only."""

    @app.get("/v1/styles")
    async def styles() -> dict:
        return {"takes_style": takes_style, "styles": gallery.listing()}

    async def by_index(read: Callable[[int], bytes], index: int, media_type: str) -> Response:
        try:
            return Response(await run_in_threadpool(read, index), media_type=media_type,
                            headers={"Cache-Control": "max-age=3600"})
        except IndexError as exc:
            return _error(404, str(exc))
        except ImageError as exc:
            return _error(404, f"style {index} cannot be read ({exc})")

    @app.get("/v1/styles/{index}")
    async def style_image(index: int) -> Response:
        return await by_index(gallery.image, index, MEDIA_TYPES["png"])

    @app.get("/v1/styles/{index}/thumbnail")
    async def style_thumbnail(index: int) -> Response:
        return await by_index(gallery.thumbnail, index, MEDIA_TYPES["jpeg"])


class HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's headers.

    uvicorn times out idle keep-alive connections only; a client that connects and sends its
    headers slowly (or not at all) holds a connection forever. Here the headers must be complete
    within ``header_timeout`` seconds of connecting or of the previous response; otherwise the
    connection is closed.
    """

    @property
    def header_timeout(self) -> float:
        """Seconds for a request's headers: the :class:`ServiceConfig`'s, in every worker."""
        return self.config.header_timeout

    def connection_made(self, transport) -> None:  # noqa: ANN001 - asyncio's transport
        super().connection_made(transport)
        self.header_timer: asyncio.TimerHandle | None = None
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        """Arm the deadline while a request's headers are awaited, cancel it once they are in."""
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()
        elif self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info(f"closed a connection from {self.client[0] if self.client else 'a client'}: "
                     f"no complete request headers within {self.header_timeout:g} s")
            self.transport.close()


class ServiceConfig(uvicorn.Config):
    """uvicorn's config with the service's protocol (:class:`HeaderDeadlineH11`) and its header
    deadline: both travel with the config into every worker process."""

    def __init__(self, app: FastAPI | Service, header_timeout: float, **options):
        super().__init__(app, http=HeaderDeadlineH11, **options)
        self.header_timeout = header_timeout


def uvicorn_server(app: FastAPI, limits: Limits = DEFAULT_LIMITS, **options) -> uvicorn.Server:
    """A uvicorn server for ``app`` with the header deadline of ``limits`` (``options`` go to
    ``uvicorn.Config``: host, port, log_level...)."""
    return uvicorn.Server(ServiceConfig(app, limits.header_timeout_s, **options))


@contextlib.contextmanager
def background_server(app: FastAPI, limits: Limits = DEFAULT_LIMITS, **options) -> Iterator[str]:
    """Run ``app`` in a daemon thread on 127.0.0.1 at a free port (bound here, so no race for
    it) for tests and benchmarks; yields its base URL and stops it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn_server(app, limits, lifespan="off", **{"log_level": "warning", **options})
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass(frozen=True)
class Service:
    """What a worker needs to build the app (:func:`create_app`'s arguments), as an app factory for
    uvicorn: it is pickled into each worker process, which then loads its own model session."""

    model_path: Path
    limits: Limits = DEFAULT_LIMITS
    concurrency: int = 1
    queue: int = 16
    threads: int = 0
    tile: int = DEFAULT_TILE
    model_ref: ModelRef | None = None
    styles: Path | None = None

    def __call__(self) -> FastAPI:
        return create_app(self.model_path, self.limits, self.concurrency, self.queue, self.threads, self.tile,
                          self.model_ref, self.styles)

    def check_model(self) -> None:
        """Open the model once, and let it go: a model that no worker could load is then one error
        line here, not workers failing (and being restarted) one after another."""
        open_photo_model(self.model_path, threads=1, tile=self.tile)


def worker_threads(threads: int, workers: int, cores: int | None = None) -> int:
    """ONNX Runtime threads for each of ``workers`` processes, so that workers × threads ≤ cores.

    ``threads`` 0 means all cores for one worker (ONNX Runtime's own default) and cores // workers
    for several; more threads or workers than the cores allow is refused (exit code 2).
    """
    cores = cores or len(os.sched_getaffinity(0))
    if workers > cores:
        raise ArtShiftError(f"--workers {workers}: more than the {cores} CPU cores of this machine")
    if threads * workers > cores:
        raise ArtShiftError(f"--threads {threads} x --workers {workers} = {threads * workers} threads for "
                            f"{cores} CPU cores; use --threads {cores // workers} or --threads 0")
    return threads or (0 if workers == 1 else cores // workers)


def serve(service: Service, host: str, port: int, workers: int = 1) -> None:
    """Run the service until interrupted: in this process, or in ``workers`` processes that share
    the listening socket (uvicorn's supervisor restarts one that dies) and their metrics."""
    options = {"host": host, "port": port, "log_level": "info"}
    if workers == 1:
        uvicorn.Server(ServiceConfig(service(), service.limits.header_timeout_s, **options)).run()
        return
    service.check_model()
    config = ServiceConfig(service, service.limits.header_timeout_s, factory=True, workers=workers, **options)
    with shared_metrics_folder():
        Multiprocess(config, sockets=[config.bind_socket()]).run()
