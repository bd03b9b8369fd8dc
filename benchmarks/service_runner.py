"""The real ``artshift serve`` in a subprocess, for the service benchmarks and tests.

:func:`running_service` starts it on a free loopback port with the given flags, waits until
``/healthz`` answers and stops it with SIGINT (as Ctrl-C would) on exit; :func:`tree_rss` reads
the resident memory of it and its worker processes from ``/proc`` (:class:`PeakRss` samples it).
"""

from __future__ import annotations

import contextlib
import io
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def photo_png(size: int | tuple[int, int], seed: int = 0) -> bytes:
    """A deterministic photo-like PNG of ``size`` (side, or width and height): smooth gradients
    plus a little noise."""
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    yy, xx = yy / height, xx / width
    rgb = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx + 4 * yy + seed)], axis=-1) * 200
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    """A loopback port free right now (bound, then released for the service to bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_service(model: Path, flags: list[str], log: Path, startup_s: float = 180.0
                    ) -> Iterator[tuple[str, subprocess.Popen]]:
    """``artshift serve --model model --port <free> *flags`` running, its output in ``log``;
    yields its URL and process once ``/healthz`` answers, and stops it (SIGINT) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "artshift.cli", "serve", "--model", str(model), "--port", str(port), *flags]
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(url, process, log, startup_s)
            yield url, process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path, startup_s: float) -> None:
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"artshift serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=5, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"artshift serve did not answer /healthz within {startup_s:g} s")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (0 for those already gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
            pending += _children(current)
    return total


class PeakRss:
    """Samples the resident memory of a process and its children every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.1):
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
