"""Peak memory and speed of real training runs as the data set grows: RSS must stay flat.

The training loader keeps only the list of file paths in memory and decodes images as the
steps need them (:mod:`artshift.data.dataset`), so a run's peak resident memory must not grow
with the number of images beyond that list (a few hundred bytes per file). This script makes
synthetic processed data sets of each size (64 px PNG squares, half photos and half paintings,
4 test images per domain; cached in --workdir so reruns reuse them), trains a tiny CUT on each
through the real ``artshift.train.train()`` in a fresh subprocess, and prints the child's peak
RSS, its growth over the first size's (Δ) and, with --workers, the largest loader worker's peak,
beside the traced size of the file list. Most of the ~1 GB baseline is the imported libraries
(torch, torchvision, pandas); a Δ that grows much faster than the file list means something
loads or caches the images themselves.

    python benchmarks/data_scale.py
    python benchmarks/data_scale.py --sizes 1000 100000 --steps 100 --workers 2 --workdir /tmp/scale
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artshift.config import Params, PreprocessParams, TrainParams
from artshift.data.dataset import image_files
from artshift.data.layout import DOMAINS, processed_folder
from artshift.train import train

IMAGE_SIZE = 64
TEST_IMAGES = 4  # per domain
BATCH = 4
COMPLETE = ".complete"  # marker written once a data set folder is finished


def synthetic_image(rng: np.random.Generator) -> Image.Image:
    """A 64 px square of smooth random colour blobs: a random 4×4 grid, bilinearly upscaled."""
    grid = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    return grid.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)


def make_dataset(workdir: Path, images: int) -> Path:
    """The processed data set of ``images`` training images under ``workdir`` (made unless cached)."""
    root = workdir / f"images_{images}"
    if (root / COMPLETE).is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(images)
    counts = {"train": {"photos": images // 2, "paintings": images - images // 2},
              "test": dict.fromkeys(DOMAINS, TEST_IMAGES)}
    for split, per_domain in counts.items():
        for domain, count in per_domain.items():
            folder = processed_folder(root, split, domain)
            folder.mkdir(parents=True)
            for i in range(count):
                synthetic_image(rng).save(folder / f"{i:06d}.png", compress_level=1)
    (root / COMPLETE).touch()
    return root


def file_list_mb(root: Path) -> float:
    """Memory the training file lists hold (Path objects with their strings), traced, in MB."""
    tracemalloc.start()
    lists = [image_files(processed_folder(root, "train", domain)) for domain in DOMAINS]
    for files in lists:
        for path in files:
            str(path)  # the loader formats each path when it opens it; Path caches the string
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return held / 2**20


def children_peak_mb() -> float:
    """The highest peak RSS (VmHWM, MB) among this process's living children: the loader workers."""
    peak = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                status = (stat.parent / "status").read_text()
                peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) / 1024)
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
    return peak


class WorkerWatch(threading.Thread):
    """Polls :func:`children_peak_mb` until stopped; ``peak_mb`` is the highest value seen.

    (``getrusage(RUSAGE_CHILDREN)`` cannot tell the workers apart: ``import torch`` already ran
    ``ldconfig`` from a fork of the whole process, which counts as a ~500 MB child.)
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_mb, self.stop = 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.peak_mb = max(self.peak_mb, children_peak_mb())


def train_once(data_dir: Path, steps: int, workers: int, threads: int) -> dict:
    """Train the tiny CUT on ``data_dir`` in this process; its speed and peak RSS (MB): of this
    process, and of its largest loader worker."""
    torch.set_num_threads(threads)
    params = Params(preprocess=PreprocessParams(load_size=IMAGE_SIZE),
                    train=TrainParams(method="cut", ngf=16, n_blocks=2, nce_layers=[0, 4, 8], num_patches=64,
                                      batch_size=BATCH, device="cpu", steps=steps, log_every=steps,
                                      sample_every=steps, checkpoint_every=steps, n_samples=2,
                                      num_workers=workers))
    watch = WorkerWatch()
    watch.start()
    with tempfile.TemporaryDirectory(prefix="artshift-scale-run-") as out:
        result = train(params, data_dir, Path(out, "checkpoints"), Path(out, "generator.pt"))
    watch.stop.set()
    return {"seconds_per_step": result.seconds_per_step,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "worker_rss_mb": watch.peak_mb}


def run_child(data_dir: Path, args: argparse.Namespace) -> dict:
    """:func:`train_once` in a fresh Python process (so its peak RSS is this run's alone)."""
    command = [sys.executable, __file__, "--child", str(data_dir), "--steps", str(args.steps),
               "--workers", str(args.workers), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "ARTSHIFT_NO_PROGRESS": "1"})
    if done.returncode:
        sys.exit(f"training on {data_dir} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000],
                        help="total training images (photos + paintings) of each data set")
    parser.add_argument("--steps", type=int, default=50, help="training steps per run")
    parser.add_argument("--workers", type=int, default=0, help="train.num_workers of the runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "artshift-data-scale",
                        help="where the synthetic data sets are made and kept for reruns")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: train on this folder, print JSON
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_once(args.child, args.steps, args.workers, args.threads)))
        return

    print(f"steps={args.steps} batch={BATCH} workers={args.workers} threads={args.threads} workdir={args.workdir}")
    rows = []
    for images in args.sizes:
        began = time.perf_counter()
        root = make_dataset(args.workdir, images)
        print(f"data set of {images} images ready in {time.perf_counter() - began:.1f} s", flush=True)
        rows.append((images, file_list_mb(root), run_child(root, args)))
    print(f"{'images':>8} {'file list MB':>12} {'peak RSS MB':>11} {'Δ RSS MB':>9} {'worker RSS MB':>13} "
          f"{'images/s':>9}")
    first_rss = rows[0][2]["rss_mb"]
    for images, list_mb, run in rows:
        workers_rss = f"{run['worker_rss_mb']:.0f}" if args.workers else "-"
        print(f"{images:>8} {list_mb:>12.2f} {run['rss_mb']:>11.0f} {run['rss_mb'] - first_rss:>9.0f} "
              f"{workers_rss:>13} {BATCH / run['seconds_per_step']:>9.1f}")


if __name__ == "__main__":
    main()
