"""The HTTP service under a mix of good and bad requests (issue 17, "Service").

    python benchmarks/serve_faults.py --requests 1000 --connections 64

Starts the real service (``artshift serve`` in a subprocess on 127.0.0.1, see
:mod:`service_runner`) and sends ``--requests`` requests, at most ``--connections`` at a time,
drawn at random (seeded) from the kinds in :data:`KINDS`: valid images (raw, multipart, with a
wrong content type, sent slowly but within the deadlines), oversized bodies (declared and
chunked), malformed multipart, non-images, truncated and bomb images, empty bodies, a bad query,
and slow clients that miss the header or body deadline. Every answer must be one its kind
expects, no answer may be a 5xx, and every valid image must come back the same size and,
pixel for pixel (within ``TOLERANCE``), as an ONNX Runtime session in this process stylises it.
Prints a table (kind, sent, outcomes, wrong) and the peak RSS of the service's processes; exits
1 when any answer was wrong.

The service runs with ``--queue`` large enough for every connection (64 by default): the fault
test asks for no load shedding, and past the queue a 503 "busy" is the designed answer.
The body limit and the deadlines are small (1 MiB, 2 s, 3 s) so that the slow and oversized
cases take little time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from artshift.inference import Stylizer
from service_runner import PeakRss, photo_png, running_service, tree_rss

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 2  # largest difference per 8-bit channel from the in-process result (thread counts differ)
VALID_SIZES = ((64, 48), (48, 64), (80, 80))
PNG = "image/png"


@dataclass(frozen=True)
class Request:
    """One request to send: its kind, and for a valid image the input's index in the references."""

    kind: str
    image: int = -1


@dataclass(frozen=True)
class Setup:
    """The service's limits that the mix is built around, as ``artshift serve`` flags."""

    limit_mb: float = 1.0
    header_s: float = 2.0
    body_s: float = 3.0
    queue: int = 64
    workers: int = 1

    @property
    def limit(self) -> int:
        return int(self.limit_mb * 2**20)

    def flags(self) -> list[str]:
        """``artshift serve`` flags: the small limits and deadlines, a queue for every connection."""
        return ["--max-body-mb", f"{self.limit_mb:g}", "--header-timeout", f"{self.header_s:g}", "--body-timeout",
                f"{self.body_s:g}", "--queue", str(self.queue), "--workers", str(self.workers)]


def valid_inputs() -> list[bytes]:
    """The valid images sent (PNG), a few sizes and contents."""
    return [photo_png(size, seed) for seed in range(2) for size in VALID_SIZES]


@functools.cache
def bomb_png() -> bytes:
    """A 1-bit PNG of 10000x10000 (100 MP) in a few kilobytes."""
    buffer = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(fields: list[tuple[str, str, bytes]], boundary: str = "artshiftboundary") -> tuple[bytes, str]:
    """A multipart/form-data body of (name, file name, data) parts, and its content type."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
             for name, filename, data in fields]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def _raw(url: str, head: bytes, pieces: list[bytes], pause: float, timeout: float) -> int | str:
    """Send ``head`` then ``pieces`` ``pause`` seconds apart on a new connection; the status of
    the answer, or ``closed`` when the service closed the connection without one."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    received = b""
    try:
        writer.write(head)
        for piece in pieces:  # each piece after a pause, unless the service answered (or closed) meanwhile
            try:
                received = await asyncio.wait_for(reader.read(65536), pause)
                break
            except TimeoutError:
                writer.write(piece)
                await writer.drain()
        received += await asyncio.wait_for(reader.read(), timeout)
    except ConnectionError:
        pass  # reset by the service: what it answered before is in ``received``
    finally:
        writer.close()
    return int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else "closed"


async def _slow(url: str, kind: str, body: bytes, setup: Setup) -> tuple[int | str, bytes]:
    """The slow clients: headers dribbled past their deadline, a body dribbled past its deadline,
    or a valid image sent in a few pieces well within both deadlines (then its answer's body)."""
    if kind.startswith("slow headers"):
        line = b"X-Slow: aaaaaaaa\r\n"
        pieces = [line[i:i + 2] for i in range(0, len(line), 2)]
        return await _raw(url, b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\n", pieces, setup.header_s / 2,
                          setup.header_s * 4), b""
    if kind.startswith("slow body"):
        head = f"POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        pieces = [body[i:i + 64] for i in range(0, 64 * 8, 64)]
        return await _raw(url, head, pieces, setup.body_s / 3, setup.body_s * 4), b""
    step = len(body) // 4 + 1

    async def trickle():
        for start in range(0, len(body), step):
            await asyncio.sleep(min(setup.body_s, setup.header_s) / 10)
            yield body[start:start + step]

    async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as http:
        answer = await http.post("/v1/stylize", content=trickle(),
                                 headers={"content-type": PNG, "content-length": str(len(body))})
    return answer.status_code, answer.content


def _multipart(fields: list[tuple[str, str, bytes]], boundary: str = "artshiftboundary") -> tuple[bytes, str]:
    """A multipart/form-data body of (name, file name, data) parts, and its content type."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
             for name, filename, data in fields]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def _chunks(total: int):
    """A body of ``total`` zero bytes sent chunked (no Content-Length)."""
    for start in range(0, total, 65536):
        yield b"\0" * min(65536, total - start)


def _body(content: object, content_type: str = PNG, **extra: object) -> dict:
    """httpx arguments: ``content`` (bytes or an async iterator) with its content type."""
    return {"content": content, "headers": {"content-type": content_type}, **extra}


def _multipart_args(name: str, filename: str, image: bytes) -> dict:
    body, content_type = _multipart([(name, filename, image)])
    return _body(body, content_type)


def _broken_multipart(image: bytes) -> dict:
    body, content_type = _multipart([("file", "a.png", image)])
    return _body(body[: len(body) // 2].replace(b"Content-Disposition", b"Content-Disp\r\n"), content_type)


# kind → (answers it may get, whether it carries a valid image, its httpx arguments from the valid
# image, the setup and a folder that must stay empty; None: a slow client, see _slow).
# "closed": the service closed the connection without an answer (a client whose headers never
# completed, or one still sending a body declared too large after its 413).
KINDS: dict[str, tuple[set, bool, Callable[[bytes, Setup, Path], dict] | None]] = {
    "valid: raw body": ({200}, True, lambda image, setup, folder: _body(image)),
    "valid: multipart, file name with ../": (
        {200}, True, lambda image, setup, folder: _multipart_args("file", f"../../{folder}/escaped.png", image)),
    "valid: labelled application/json": ({200}, True, lambda image, setup, folder: _body(image, "application/json")),
    "valid: slow client within the deadlines": ({200}, True, None),
    "oversized body (Content-Length)": (
        {413, "closed"}, False, lambda image, setup, folder: _body(b"\x89PNG" + b"\0" * setup.limit)),
    "oversized body (chunked)": (
        {413, "closed"}, False, lambda image, setup, folder: _body(_chunks(setup.limit + 2**17))),
    "malformed multipart": ({400}, False, lambda image, setup, folder: _broken_multipart(image)),
    "multipart without a boundary": (
        {400}, False, lambda image, setup, folder: _body(b"--x\r\nnot a part", "multipart/form-data")),
    "multipart without a file field": (
        {400}, False, lambda image, setup, folder: _multipart_args("photo", "a.png", image)),
    "random bytes labelled image/jpeg": (
        {415}, False, lambda image, setup, folder: _body(random.Random(len(image)).randbytes(4096), "image/jpeg")),
    "text labelled text/plain": (
        {415}, False, lambda image, setup, folder: _body(b"hello, not a picture\n" * 20, "text/plain")),
    "truncated PNG": ({415}, False, lambda image, setup, folder: _body(image[: len(image) // 3])),
    "decompression bomb (1-bit PNG of 10000x10000)": ({413}, False, lambda image, setup, folder: _body(bomb_png())),
    "empty body": ({400}, False, lambda image, setup, folder: _body(b"")),
    "unknown ?format": ({400}, False, lambda image, setup, folder: _body(image, params={"format": "gif"})),
    "slow headers (past the header deadline)": ({"closed"}, False, None),
    "slow body (past the body deadline)": ({408, "closed"}, False, None),
}


def draw(n: int, seed: int) -> list[Request]:
    """``n`` requests, shuffled: one of each kind first (as far as ``n`` goes), then 40% valid
    images and 60% spread over the bad kinds."""
    rng = random.Random(seed)
    valid = [kind for kind, (_, ok, _) in KINDS.items() if ok]
    bad = [kind for kind, (_, ok, _) in KINDS.items() if not ok]
    count = len(valid_inputs())
    kinds = [*KINDS, *(rng.choice(valid) if index % 5 < 2 else rng.choice(bad) for index in range(n - len(KINDS)))]
    requests = [Request(kind, rng.randrange(count) if KINDS[kind][1] else -1) for kind in kinds[:n]]
    rng.shuffle(requests)
    return requests


async def send(http: httpx.AsyncClient, request: Request, images: list[bytes], setup: Setup,
               folder: Path) -> tuple[int | str, bytes]:
    """Send one request; its outcome (a status, ``closed`` or ``client error: ...``) and answer body."""
    image = images[request.image] if request.image >= 0 else images[0]
    build = KINDS[request.kind][2]
    try:
        if build is None:
            return await _slow(str(http.base_url).rstrip("/"), request.kind, image, setup)
        answer = await http.post("/v1/stylize", **build(image, setup, folder))
        return answer.status_code, answer.content
    except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
        return "closed", b""  # the service closed the connection (after a 413, or before an answer)
    except httpx.HTTPError as exc:
        return f"client error: {type(exc).__name__}", b""


def correct(answer: bytes, reference: np.ndarray) -> bool:
    """Whether ``answer`` is an image of the reference's size with every channel within TOLERANCE."""
    try:
        pixels = np.asarray(Image.open(io.BytesIO(answer)).convert("RGB"), dtype=np.int16)
    except OSError:
        return False
    return pixels.shape == reference.shape and int(np.abs(pixels - reference).max()) <= TOLERANCE


async def run_mix(url: str, requests: list[Request], connections: int, references: list[np.ndarray], setup: Setup,
                  folder: Path) -> dict[str, Counter]:
    """Send ``requests`` at most ``connections`` at a time; per kind, a Counter of outcomes, with
    ``wrong image`` for a 200 whose image is not the reference."""
    images = valid_inputs()
    gate = asyncio.Semaphore(connections)
    outcomes: dict[str, Counter] = defaultdict(Counter)
    pool = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=pool, trust_env=False) as http:

        async def one(request: Request) -> None:
            async with gate:
                outcome, body = await send(http, request, images, setup, folder)
            if outcome == 200 and KINDS[request.kind][1] and not correct(body, references[request.image]):
                outcome = "wrong image"
            outcomes[request.kind][outcome] += 1

        await asyncio.gather(*(one(request) for request in requests))
    return outcomes


def references(model: Path) -> list[np.ndarray]:
    """What the model makes of each valid input, computed in this process."""
    stylizer = Stylizer(model, threads=1)
    return [np.asarray(stylizer.stylize(Image.open(io.BytesIO(data)).convert("RGB")), dtype=np.int16)
            for data in valid_inputs()]


def wrong(outcomes: dict[str, Counter]) -> dict[str, int]:
    """Per kind, how many answers its kind does not expect (5xx, wrong images, client errors...)."""
    return {kind: sum(n for outcome, n in counts.items() if outcome not in KINDS[kind][0])
            for kind, counts in outcomes.items()}


def server_errors(outcomes: dict[str, Counter]) -> int:
    """How many answers were a 5xx."""
    return sum(n for counts in outcomes.values() for outcome, n in counts.items()
               if isinstance(outcome, int) and outcome >= 500)


def table(outcomes: dict[str, Counter]) -> list[str]:
    """The report's rows: per kind, what was sent, what came back, what was expected, how many were wrong."""
    bad = wrong(outcomes)
    rows = ["| kind | sent | outcomes | expected | wrong |", "|---|---|---|---|---|"]
    for kind, (expected, _, _) in KINDS.items():
        counts = outcomes.get(kind, Counter())
        shown = ", ".join(f"{outcome} x{n}" for outcome, n in sorted(counts.items(), key=str))
        rows.append(f"| {kind} | {sum(counts.values())} | {shown} | {', '.join(sorted(map(str, expected)))} | "
                    f"{bad.get(kind, 0)} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "generator.onnx")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--queue", type=int, default=64, help="artshift serve --queue (default 64, see above)")
    parser.add_argument("--workers", type=int, default=1, help="artshift serve --workers (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setup = Setup(queue=args.queue, workers=args.workers)
    requests, refs = draw(args.requests, args.seed), references(args.model)
    with tempfile.TemporaryDirectory(prefix="serve-faults-") as tmp:
        folder = Path(tmp)
        with running_service(args.model, setup.flags(), folder / "serve.log") as (url, process), \
                PeakRss(process.pid) as rss:
            start_rss, began = tree_rss(process.pid), time.perf_counter()
            outcomes = asyncio.run(run_mix(url, requests, args.connections, refs, setup, folder))
            seconds = time.perf_counter() - began
        escaped = [p.name for p in folder.iterdir() if p.name != "serve.log"]
        tracebacks = (folder / "serve.log").read_text().count("Traceback")
    valid = [counts for kind, counts in outcomes.items() if KINDS[kind][1]]
    print(f"{args.requests} requests, {args.connections} connections, {seconds:.1f} s; "
          f"artshift serve {' '.join(setup.flags())}")
    print("\n".join(table(outcomes)))
    print(f"5xx: {server_errors(outcomes)}; valid images answered correctly: {sum(c[200] for c in valid)} of "
          f"{sum(sum(c.values()) for c in valid)}; unexpected answers: {sum(wrong(outcomes).values())}; "
          f"files written from requests: {len(escaped)}; tracebacks in the service's log: {tracebacks}")
    print(f"service RSS (all processes): {start_rss / 2**20:.0f} MB at start, peak {rss.peak / 2**20:.0f} MB")
    return 1 if sum(wrong(outcomes).values()) or server_errors(outcomes) or escaped or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
