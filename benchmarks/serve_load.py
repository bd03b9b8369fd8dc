"""Load test of the HTTP service: N concurrent clients posting a 256x256 PNG to /v1/stylize.

    python benchmarks/serve_load.py --seconds 60 --clients 32 --concurrency 1 --queue 16

Starts the real app (:func:`artshift.serve.create_app`, with ``artshift serve``'s defaults unless
told otherwise) under uvicorn with the service's own protocol (:func:`artshift.serve.background_server`:
a daemon thread, 127.0.0.1, a free port), waits for it, sends one warm-up
request, then runs ``--clients`` asyncio clients (httpx.AsyncClient) in a closed loop for
``--seconds``: each client posts, waits for the answer, posts again. No request starts after
the deadline; those in flight are awaited (each has a ``--timeout``), then the server stops.

Prints throughput (successful responses / wall time, drain included), p50/p99 latency of the
successful responses, and the failures: 503 "busy" answers from the service's wait queue
apart from other status codes and from client-side exceptions (timeouts, connection errors).
The load generator shares the machine (and this process) with the server, so on a small
machine its own CPU use is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from artshift.serve import background_server, create_app

ROOT = Path(__file__).resolve().parents[1]


def test_png(size: int) -> bytes:
    """A deterministic photo-like PNG: smooth gradients plus a little noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx + 4 * yy)], axis=-1) * 200
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "generator.onnx")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long clients keep sending (default 60)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="side of the posted PNG")
    parser.add_argument("--concurrency", type=int, default=1, help="create_app: images stylised at a time (default 1, "
                        "as artshift serve)")
    parser.add_argument("--queue", type=int, default=16, help="create_app: requests allowed to wait (default 16, "
                        "as artshift serve)")
    parser.add_argument("--threads", type=int, default=0, help="create_app: ORT intra-op threads (0 = ORT default)")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request, seconds")
    args = parser.parse_args()
    if args.seconds <= 0 or args.clients < 1:
        parser.error("--seconds must be > 0 and --clients >= 1")

    app = create_app(args.model, concurrency=args.concurrency, queue=args.queue, threads=args.threads)
    body = test_png(args.size)
    # Loopback only, on purpose: this tool never targets another machine.
    with background_server(app, access_log=False, backlog=2048, timeout_keep_alive=30) as url:
        result = asyncio.run(run_load(url, body, args.clients, args.seconds, args.timeout))

    latencies = np.array(result["latencies"])
    statuses, exceptions = result["statuses"], result["exceptions"]
    ok = statuses.get(200, 0)
    busy = statuses.get(503, 0)
    other = {code: n for code, n in sorted(statuses.items()) if code not in (200, 503)}
    print(f"model {args.model.name} (provider {result['provider']}), {args.size}x{args.size} PNG "
          f"({len(body)} bytes), {args.clients} clients, {args.seconds:g} s, concurrency {args.concurrency}, "
          f"queue {args.queue}, threads {args.threads}, server {url}")
    print(f"requests      : {sum(statuses.values()) + sum(exceptions.values())} "
          f"({ok} ok) in {result['wall']:.1f} s (includes draining in-flight requests)")
    print(f"throughput    : {ok / result['wall']:.2f} req/s")
    if ok:
        print(f"latency (200) : p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, "
              f"p99 {np.percentile(latencies, 99) * 1e3:.0f} ms, max {latencies.max() * 1e3:.0f} ms")
    print(f"503 busy      : {busy}")
    print(f"errors        : {sum(other.values()) + sum(exceptions.values())}"
          + (f"  by status {other}" if other else "") + (f"  exceptions {dict(exceptions)}" if exceptions else ""))


if __name__ == "__main__":
    main()
