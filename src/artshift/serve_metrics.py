"""Prometheus metrics of the HTTP service, served at ``GET /metrics`` in Prometheus' text format.

One worker: each app keeps its own registry. Several (``artshift serve --workers N``):
prometheus-client's multiprocess mode. The parent makes a private folder, sets
``$PROMETHEUS_MULTIPROC_DIR`` to it before the workers start (prometheus-client reads it when it
is imported), each worker writes its values to memory-mapped files there, and ``/metrics`` adds
all workers up, whichever of them answers. The folder is removed when the service stops.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from a cheap /healthz to an image at the default 60 s time budget.
LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def multiprocess() -> bool:
    """Whether this process is one of several workers sharing their metrics through files."""
    return bool(os.environ.get(MULTIPROC_ENV))


@contextlib.contextmanager
def shared_metrics_folder() -> Iterator[str]:
    """A fresh folder for the workers' metric files (in RAM under ``/dev/shm`` where there is one),
    named in ``$PROMETHEUS_MULTIPROC_DIR`` for the processes started inside the block; removed after."""
    shm = "/dev/shm"  # a tmpfs, as prometheus-client's docs suggest
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    previous = os.environ.get(MULTIPROC_ENV)
    with tempfile.TemporaryDirectory(prefix="artshift-metrics-", dir=base) as folder:
        os.environ[MULTIPROC_ENV] = folder
        try:
            yield folder
        finally:
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous


class ServiceMetrics:
    """The service's metrics: requests by route and status, their latency, the stylize queue and
    the model served (``artshift_model_info``, value 1, the model in its labels)."""

    def __init__(self, model: str, version: str | None, run_id: str | None, provider: str):
        self.registry = CollectorRegistry()
        self.requests = Counter("artshift_http_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("artshift_http_request_duration_seconds", "Time to answer an HTTP request, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("artshift_queue_depth", "Stylize requests waiting for a free model slot",
                                 registry=self.registry, multiprocess_mode="livesum")
        self.in_progress = Gauge("artshift_stylize_in_progress", "Images being stylised now",
                                 registry=self.registry, multiprocess_mode="livesum")
        info = Gauge("artshift_model_info", "The model served (always 1): its name, registry version, MLflow run "
                     "and execution provider", ["model", "version", "run_id", "provider"], registry=self.registry,
                     multiprocess_mode="livemax")
        info.labels(model, version or "", run_id or "", provider).set(1)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """What ``/metrics`` answers and its content type, in the format the ``Accept`` header asks
        for (Prometheus text 0.0.4 by default, OpenMetrics on request): this app's registry, or
        every worker's files added up."""
        encode, content_type = choose_encoder(accept)
        if not multiprocess():
            return encode(self.registry), content_type
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return encode(registry), content_type

    @staticmethod
    def worker_exit() -> None:
        """Drop this worker's live gauges (queue depth, in progress, model) from the shared files."""
        if multiprocess():
            mark_process_dead(os.getpid())


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request and counting it by route template (never the raw
    path, so random URLs add no series) and status; an exception that escapes counts as 500."""

    def __init__(self, app, metrics: ServiceMetrics):  # an ASGI app
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = perf_counter(), 500

        async def send_and_note(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(route, status, perf_counter() - began)
