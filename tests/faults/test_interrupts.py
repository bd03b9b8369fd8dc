"""Cut connections and interrupted commands: a download cut at random points resumes to the right
bytes and never passes a partial file off as finished; SIGINT or SIGTERM in ``artshift stylize``
leaves whole outputs only (no partial image, no temporary file)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from artshift.data.download import download_file
from artshift.errors import DataError
from artshift.images import load_rgb

from .conftest import random_photos, trials


class CuttingServer:
    """Serves one file with its full Content-Length but closes the connection after a random number
    of bytes (drawn from ``seed``), honouring ``Range: bytes=N-``; every ``whole_every``-th answer is whole."""

    def __init__(self, data: bytes, seed: int, whole_every: int = 6):
        self.data, self.rng, self.whole_every, self.answers = data, np.random.default_rng(seed), whole_every, 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/set.zip"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                header = self.headers.get("Range")
                start = int(header.removeprefix("bytes=").split("-")[0]) if header else 0
                body = server.data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.data) - 1}/{len(server.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                server.answers += 1
                cut = len(body) if server.answers % server.whole_every == 0 else int(server.rng.integers(0, len(body)))
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True

        return Handler

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("pinned", [True, False], ids=["sha256", "no-sha256"])
def test_a_download_cut_at_random_points_resumes_to_the_right_bytes(tmp_path, fault, pinned):
    """Download cut by the server at random points, then run again"""
    for trial in range(trials(10)):
        data = np.random.default_rng(trial).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
        digest = hashlib.sha256(data).hexdigest()
        server = CuttingServer(data, seed=trial)
        dest = tmp_path / f"{trial}.zip"
        part = dest.with_name(dest.name + ".part")
        runs, lost = 0, False
        try:
            while runs < 20:
                runs += 1
                try:
                    download_file(server.url, dest, digest if pinned else "", retries=0, backoff_s=0.0)
                    break
                except DataError as exc:  # the run failed: nothing may look finished, the part is a true prefix
                    assert "\n" not in str(exc)
                    received = part.read_bytes() if part.exists() else b""
                    lost |= dest.exists() or data[:len(received)] != received
        finally:
            server.close()
        ok = dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == digest and not part.exists()
        fault.trial(survived=ok and runs > 1, lost=lost or (dest.exists() and not ok))
    assert fault.survived == fault.trials and fault.lost == 0


def _default_sigint() -> None:
    # A shell without job control starts `cmd &` with SIGINT ignored, and so every process under
    # it, this test's command too; Ctrl-C reaches a command in a terminal with SIGINT's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stylize(inputs, out, model, *extra):
    env = {**os.environ, "ARTSHIFT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "artshift.cli", "stylize", str(inputs), "--out", str(out),
                             "--model", str(model), "--threads", "1", *extra],
                            env=env, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_stylize_leaves_whole_outputs_only(tmp_path, tiny_onnx, fault, sig):
    """Ctrl-C (SIGINT) or SIGTERM during artshift stylize"""
    inputs = random_photos(tmp_path / "in", 8, 700, 900, seed=0)
    rng = np.random.default_rng(0)  # when each signal comes
    for trial in range(trials(3)):
        out = tmp_path / f"out{trial}"
        process = _stylize(inputs, out, tiny_onnx)
        began = time.monotonic()
        while not (out.is_dir() and any(out.iterdir())) and process.poll() is None and time.monotonic() - began < 120:
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0, 0.6)))  # somewhere in a later image: running the model or saving
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        names = sorted(p.name for p in out.iterdir())
        whole = all(name.endswith(".png") and load_rgb(out / name).size == (900, 700) for name in names)
        interrupted = process.returncode == 128 + sig and len(names) < 8
        fault.trial(survived=interrupted and "Traceback" not in err, lost=not whole)
        assert whole, names
    assert fault.survived == fault.trials


def test_concurrent_stylize_runs_on_one_output_folder_write_whole_files(tmp_path, tiny_onnx, fault):
    """Concurrent artshift stylize --force runs writing the same output folder"""
    inputs, out = random_photos(tmp_path / "in", 6, 300, 400, seed=1), tmp_path / "out"
    for _ in range(trials(2)):
        processes = [_stylize(inputs, out, tiny_onnx, "--force") for _ in range(3)]
        errors = [process.communicate(timeout=300)[1] for process in processes]
        names = sorted(p.name for p in out.iterdir())
        whole = names == [f"{i}.png" for i in range(6)] and all(load_rgb(out / n).size == (400, 300) for n in names)
        fault.trial(survived=all(p.returncode == 0 for p in processes), lost=not whole)
        assert whole and fault.survived == fault.trials, errors
