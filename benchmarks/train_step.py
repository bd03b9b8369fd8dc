"""Seconds per training step (D + G update) and images per second, for every combination asked.

Every option but --batch, --steps and --threads is repeatable; the script times each
combination of the values given and prints one row per combination.

    python benchmarks/train_step.py --size 128 --ngf 32 --ngf 64 --threads 2
    python benchmarks/train_step.py --method cut --method cyclegan --method dcgan:16
    python benchmarks/train_step.py --method cut --size 128 --ngf 32 --workers mem --workers 0 --workers 2
    python benchmarks/train_step.py --precision fp32 --precision bf16 --channels-last off --channels-last on
    python benchmarks/train_step.py --size 64 --ngf 16 --compile off --compile on
    python benchmarks/train_step.py --device cuda --size 256 --ngf 64 --n-blocks 9 --method cut:1 --method cut:8 \\
        --precision fp32 --precision bf16 --channels-last off --channels-last on --compile off --compile on
    python benchmarks/train_step.py --device cuda --size 256 --method cut:8 --workers mem --workers 4 --workers 8

--workers mem (the default) reuses one random batch, already on the device, for every step: the
networks' cost alone. --workers N feeds the steps from the real ``unpaired_loader`` with N
worker processes (0: decoding in this process) over a small synthetic processed folder in a
temporary directory, so decoding, cropping and the copy to the device are included.
"""

import argparse
import itertools
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artshift.config import Params, PreprocessParams, TrainParams
from artshift.data.dataset import unpaired_loader
from artshift.data.layout import DOMAINS, processed_folder
from artshift.device import resolve_device
from artshift.train import TrainState, train_step

IN_MEMORY = "mem"
SWITCH = {"off": False, "on": True}
LOADER_IMAGES = 32  # per domain in the synthetic folder the loader reads


@dataclass(frozen=True)
class Config:
    """One measured combination."""

    method: str
    batch: int
    size: int
    ngf: int
    n_blocks: int
    device: str
    precision: str
    channels_last: bool
    compile: bool
    workers: str  # IN_MEMORY or a number of loader workers


def synthetic_folder(root: Path, size: int) -> Path:
    """A processed data set of ``size`` px random-gradient PNGs under ``root`` (made once per size)."""
    folder = root / f"{size}px"
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size)
    for domain in DOMAINS:
        target = processed_folder(folder, "train", domain)
        if target.is_dir():
            continue
        target.mkdir(parents=True)
        for i in range(LOADER_IMAGES):
            colour = rng.random((2, 3))
            pixels = np.outer(ramp, 1 - ramp)[..., None] * colour[0] + ramp[None, :, None] * colour[1]
            pixels = pixels + rng.normal(0, 0.05, pixels.shape)
            Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)).save(target / f"{i:04d}.png")
    return folder


def batches(config: Config, device: torch.device, data_root: Path) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (photos, paintings) batches on ``device`` in the configured memory format."""
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    if config.workers == IN_MEMORY:
        pair = tuple((torch.rand(config.batch, 3, config.size, config.size) * 2 - 1)
                     .to(device).contiguous(memory_format=layout) for _ in range(2))
        yield from itertools.repeat(pair)
        return
    folder = synthetic_folder(data_root, config.size)
    loader = unpaired_loader(*(processed_folder(folder, "train", domain) for domain in DOMAINS), config.size,
                             config.batch, seed=0, num_workers=int(config.workers),
                             pin_memory=device.type == "cuda")
    for pair in loader:
        yield tuple(images.to(device, non_blocking=True).contiguous(memory_format=layout) for images in pair)


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def seconds_per_step(config: Config, steps: int, data_root: Path) -> float:
    """Mean wall time of ``steps`` training steps after 2 warm-up steps (3 when compiling)."""
    device = resolve_device(config.device, "--device")
    params = Params(preprocess=PreprocessParams(load_size=config.size),
                    train=TrainParams(method=config.method, ngf=config.ngf, n_blocks=config.n_blocks,
                                      batch_size=config.batch, device=config.device, precision=config.precision,
                                      channels_last=config.channels_last, compile=config.compile))
    state = TrainState.create(params, torch.Generator().manual_seed(0), image_size=config.size, device=device)
    stream = batches(config, device, data_root)
    warmup = 3 if config.compile else 2
    for step in range(1, warmup + 1):
        train_step(state, *next(stream), step)
    began = clock(device)
    for step in range(warmup + 1, warmup + steps + 1):
        train_step(state, *next(stream), step)
    elapsed = clock(device) - began
    stream.close()  # ends the loader's worker processes
    return elapsed / steps


def configs(args: argparse.Namespace) -> Iterator[Config]:
    """Every combination of the command line's values, defaults filled in."""
    methods = []
    for spec in args.method or ["cut"]:
        method, _, batch = spec.partition(":")
        methods.append((method, int(batch) if batch else args.batch))
    for (method, batch), *rest in itertools.product(
            methods, args.size or [128], args.ngf or [32], args.n_blocks or [6], args.device or ["auto"],
            args.precision or ["fp32"], [SWITCH[v] for v in args.channels_last or ["off"]],
            [SWITCH[v] for v in args.compile or ["off"]], args.workers or [IN_MEMORY]):
        yield Config(method, batch, *rest)


def workers_value(text: str) -> str:
    """Argparse type of --workers: ``mem`` or a non-negative number."""
    if text != IN_MEMORY and not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected {IN_MEMORY} or a number of workers, got {text!r}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", action="append",
                        help="train.method, optionally :batch (repeatable; default cut; dcgan needs a batch >= 2)")
    parser.add_argument("--size", type=int, action="append", help="image side (repeatable; default 128)")
    parser.add_argument("--ngf", type=int, action="append", help="generator width (repeatable; default 32)")
    parser.add_argument("--n-blocks", type=int, action="append", help="generator residual blocks (default 6)")
    parser.add_argument("--device", action="append", help="auto, cpu, cuda or cuda:N (repeatable; default auto)")
    parser.add_argument("--precision", action="append", choices=["fp32", "bf16", "fp16"],
                        help="autocast precision (repeatable; default fp32)")
    parser.add_argument("--channels-last", action="append", choices=list(SWITCH),
                        help="NHWC networks and batches (repeatable; default off)")
    parser.add_argument("--compile", action="append", choices=list(SWITCH),
                        help="torch.compile G and D (repeatable; default off)")
    parser.add_argument("--workers", type=workers_value, action="append",
                        help=f"{IN_MEMORY}: one in-memory batch; N: the real loader with N workers "
                             f"(repeatable; default {IN_MEMORY})")
    parser.add_argument("--batch", type=int, default=1, help="batch size where --method names none")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per combination")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"threads={args.threads} steps={args.steps} torch={torch.__version__}")
    print(f"{'method':>9} {'batch':>5} {'size':>5} {'ngf':>4} {'blocks':>6} {'device':>7} {'prec':>5} "
          f"{'NHWC':>4} {'compile':>7} {'workers':>7} {'s/step':>8} {'img/s':>8} {'min/1k steps':>12}")
    with tempfile.TemporaryDirectory(prefix="artshift-bench-") as data_root:
        for config in configs(args):
            row = (f"{config.method:>9} {config.batch:>5} {config.size:>5} {config.ngf:>4} {config.n_blocks:>6} "
                   f"{config.device:>7} {config.precision:>5} {'on' if config.channels_last else 'off':>4} "
                   f"{'on' if config.compile else 'off':>7} {config.workers:>7}")
            try:
                per_step = seconds_per_step(config, args.steps, Path(data_root))
            except Exception as exc:  # one failing combination (e.g. no compiler) must not end the sweep
                print(f"{row}  failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
                continue
            print(f"{row} {per_step:>8.3f} {config.batch / per_step:>8.2f} {per_step * 1000 / 60:>12.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
