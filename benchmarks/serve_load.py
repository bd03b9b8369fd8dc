"""Load test of the HTTP service: 1 and 2 workers side by side, N concurrent clients posting a PNG.

    python benchmarks/serve_load.py --seconds 60 --clients 32 --workers 1 2

For each ``--workers`` value, starts the real service (``artshift serve --workers N`` in a
subprocess on a free 127.0.0.1 port, with ``artshift serve``'s defaults unless told otherwise:
``--concurrency 1 --queue 16`` per worker, ``--threads 0`` = the cores shared out among the
workers), waits for it, sends one warm-up request, then runs ``--clients`` asyncio clients
(httpx.AsyncClient) in a closed loop for ``--seconds``: each client posts, waits for the answer,
posts again (after a 503, it waits the ``Retry-After`` second). No request starts after the
deadline; those in flight are awaited (each has a ``--timeout``), then the service is stopped.

Prints one row per setting: throughput (successful responses / wall time, drain included), p50
and p99 latency of the successful responses, the 503 "busy" answers from the wait queues, other
failures (status codes, client-side exceptions), and the peak RSS of the service's processes.
The load generator shares the machine with the service, so on a small machine its own CPU use
is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from service_runner import PeakRss, photo_png, running_service

ROOT = Path(__file__).resolve().parents[1]


async def client(http: httpx.AsyncClient, body: bytes, deadline: float,
                 latencies: list[float], statuses: Counter, exceptions: Counter) -> None:
    """Closed loop: post, wait, repeat until ``deadline`` (no request starts after it)."""
    while time.monotonic() < deadline:
        began = time.perf_counter()
        try:
            response = await http.post("/v1/stylize", content=body, headers={"content-type": "image/png"})
        except httpx.HTTPError as exc:
            exceptions[type(exc).__name__] += 1
            await asyncio.sleep(0.1)  # a broken connection must not turn into a busy loop
            continue
        elapsed = time.perf_counter() - began
        statuses[response.status_code] += 1
        if response.status_code == 200:
            latencies.append(elapsed)
        elif response.status_code == 503:
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))


async def run_load(url: str, body: bytes, clients: int, seconds: float, timeout: float) -> dict:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits, trust_env=False) as http:
        warm = await http.post("/v1/stylize", content=body, headers={"content-type": "image/png"})
        if warm.status_code != 200 or Image.open(io.BytesIO(warm.content)).size != Image.open(io.BytesIO(body)).size:
            raise RuntimeError(f"warm-up request failed: {warm.status_code} {warm.text[:200]}")
        provider = (await http.get("/healthz")).json().get("provider")
        latencies: list[float] = []
        statuses: Counter = Counter()
        exceptions: Counter = Counter()
        began = time.perf_counter()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(http, body, deadline, latencies, statuses, exceptions)
                               for _ in range(clients)))
        wall = time.perf_counter() - began
    return {"latencies": latencies, "statuses": statuses, "exceptions": exceptions, "wall": wall,
            "provider": provider}


def measure(args: argparse.Namespace, workers: int, body: bytes, folder: Path) -> dict:
    """One setting: the service with ``workers`` processes under the load; its figures."""
    flags = ["--workers", str(workers), "--concurrency", str(args.concurrency), "--queue", str(args.queue),
             "--threads", str(args.threads)]
    with running_service(args.model, flags, folder / f"serve-{workers}.log") as (url, process), \
            PeakRss(process.pid) as rss:
        result = asyncio.run(run_load(url, body, args.clients, args.seconds, args.timeout))
    return result | {"workers": workers, "peak_rss": rss.peak}


def row(result: dict) -> str:
    """One line of the side-by-side table."""
    latencies, statuses, exceptions = np.array(result["latencies"]), result["statuses"], result["exceptions"]
    ok = statuses.get(200, 0)
    other = sum(n for code, n in statuses.items() if code not in (200, 503)) + sum(exceptions.values())
    p50, p99 = ((np.percentile(latencies, q) * 1e3 for q in (50, 99)) if ok else ("-", "-"))
    return (f"| {result['workers']} | {ok / result['wall']:.2f} | {p50:.0f} | {p99:.0f} | {ok} | "
            f"{statuses.get(503, 0)} | {other} | {result['peak_rss'] / 2**20:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "generator.onnx")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="settings to compare (default 1 2)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long clients keep sending (default 60)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="side of the posted PNG")
    parser.add_argument("--concurrency", type=int, default=1, help="artshift serve --concurrency (default 1)")
    parser.add_argument("--queue", type=int, default=16, help="artshift serve --queue (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="artshift serve --threads (0 = cores / workers)")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request, seconds")
    args = parser.parse_args()
    if args.seconds <= 0 or args.clients < 1 or min(args.workers) < 1:
        parser.error("--seconds must be > 0, --clients and --workers >= 1")

    body = photo_png(args.size)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        results = [measure(args, workers, body, Path(folder)) for workers in args.workers]
    print(f"model {args.model.name} (provider {results[0]['provider']}), {args.size}x{args.size} PNG "
          f"({len(body)} bytes), {args.clients} clients, {args.seconds:g} s per setting, per worker: "
          f"concurrency {args.concurrency}, queue {args.queue}, threads {args.threads or 'cores / workers'}")
    print("| workers | req/s | p50 ms | p99 ms | 200 | 503 busy | errors | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        print(row(result))


if __name__ == "__main__":
    main()
