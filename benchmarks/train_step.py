"""Seconds per training step (D + G update) of each method on this machine, for sizing `train.steps`.

    python benchmarks/train_step.py --size 128 --ngf 32 --ngf 64 --threads 2
    python benchmarks/train_step.py --method cut --method cyclegan --method dcgan:16
"""

import argparse
import time

import torch

from artshift.config import Params, TrainParams
from artshift.train import TrainState, train_step


def seconds_per_step(method: str, size: int, ngf: int, batch: int, steps: int) -> float:
    """Mean wall time of ``steps`` training steps after two warm-up steps."""
    params = Params(train=TrainParams(method=method, ngf=ngf, batch_size=batch))
    state = TrainState.create(params, torch.Generator().manual_seed(0), image_size=size)
    real_a, real_b = (torch.rand(batch, 3, size, size) * 2 - 1 for _ in range(2))
    for step in range(1, 3):
        train_step(state, real_a, real_b, step)
    began = time.perf_counter()
    for step in range(3, steps + 3):
        train_step(state, real_a, real_b, step)
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", action="append",
                        help="train.method, optionally :batch (repeatable; default cut; dcgan needs a batch >= 2)")
    parser.add_argument("--size", type=int, action="append", help="image side (repeatable; default 128)")
    parser.add_argument("--ngf", type=int, action="append", help="generator width (repeatable; default 32)")
    parser.add_argument("--batch", type=int, default=1, help="batch size where --method names none")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads}")
    print(f"{'method':>9} {'batch':>5} {'size':>6} {'ngf':>5} {'s/step':>8} {'min/1k steps':>13}")
    for spec in args.method or ["cut"]:
        method, _, batch = spec.partition(":")
        batch = int(batch) if batch else args.batch
        for size in args.size or [128]:
            for ngf in args.ngf or [32]:
                per_step = seconds_per_step(method, size, ngf, batch, args.steps)
                print(f"{method:>9} {batch:>5} {size:>6} {ngf:>5} {per_step:>8.3f} {per_step * 1000 / 60:>13.1f}")


if __name__ == "__main__":
    main()
