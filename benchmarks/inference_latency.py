"""Generator inference latency: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8 (CPU).

    python benchmarks/inference_latency.py --threads 2
    python benchmarks/inference_latency.py --threads 2 --profile --sweep-options

Every backend runs with the same thread count (``torch.set_num_threads`` for eager, the
session's ``intra_op_num_threads`` for ORT) on the same seeded inputs in [-1, 1]. Each
(size, batch) configuration gets ``--warmup`` untimed runs, then a fixed number of timed
repetitions: ``--reps`` for 256 px batch 1, scaled down by the amount of work per run (never
below ``--min-reps``) so that 512 px batch 8 stays affordable on two cores. The backends take
turns in ``--rounds`` rounds, each making its share of the runs, so that a machine whose speed
drifts (a shared virtual machine's varied by up to 1.8× within seconds) slows every
backend alike instead of whichever ran during a slow stretch. Prints p50/p99 latency per run
(ms), images/s, and the throughput ratios ORT fp32 / eager and int8 / eager: the median over
the rounds of each round's ratio, which compares runs made seconds apart.

The ORT numbers go through :class:`artshift.inference.Stylizer` (graph optimisation ALL),
pinned to the CPU provider. The int8 model is optional: ``--int8 PATH``, else
``models/generator.int8.onnx`` when it exists, else "int8: not available".

``--profile`` runs the fp32 (and int8) model with ORT profiling at 256 px batch 1 and prints
the ten ops with the largest total time. ``--sweep-options`` times fp32 at 256 px batch 1 under a few
session-option variants against the Stylizer's options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from artshift.models.networks import ResnetGenerator, init_weights

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "models" / "generator.pt"
DEFAULT_FP32 = ROOT / "models" / "generator.onnx"
DEFAULT_INT8 = ROOT / "models" / "generator.int8.onnx"
BASE_PIXELS = 256 * 256  # the work of one 256 px image: --reps applies to this much per run
CPU = ["CPUExecutionProvider"]


def load_generator(checkpoint: Path) -> tuple[torch.nn.Module, str]:
    """The trained generator, or a freshly initialised one of the same shape (same cost)."""
    if checkpoint.is_file():
        from artshift.checkpoint import load_generator as load

        generator, record = load(checkpoint)
        return generator.eval(), f"{checkpoint} (arch {record['arch']})"
    generator = ResnetGenerator(ngf=32, n_blocks=6, antialias=True)  # the default params' network
    init_weights(generator)
    return generator.eval(), f"random init ResnetGenerator(ngf=32, n_blocks=6, antialias) ({checkpoint} missing)"


def repetitions(args: argparse.Namespace, size: int, batch: int) -> int:
    work = batch * size * size / BASE_PIXELS
    return max(args.min_reps, min(args.reps, round(args.reps / work)))


def time_interleaved(backends: dict, x, warmup: int, reps: int, rounds: int) -> dict[str, list[np.ndarray]]:
    """Seconds per call of each backend on ``x``, round by round: ``warmup`` untimed calls each,
    then ``rounds`` rounds in which every backend in turn makes its share of the ``reps`` timed calls."""
    for fn in backends.values():
        for _ in range(warmup):
            fn(x)
    shares = np.diff(np.linspace(0, reps, min(rounds, reps) + 1).round().astype(int))
    times: dict[str, list[np.ndarray]] = defaultdict(list)
    for share in shares:
        for name, fn in backends.items():
            times[name].append(time_runs(fn, x, 0, int(share)))
    return times


def speedup(base: list[np.ndarray], other: list[np.ndarray]) -> float:
    """The median over rounds of ``other``'s throughput over ``base``'s in the same round."""
    return float(np.median([b.mean() / o.mean() for b, o in zip(base, other, strict=True)]))


def time_runs(fn, x, warmup: int, reps: int) -> np.ndarray:
    """Seconds per call of ``fn(x)``: ``warmup`` untimed calls, then ``reps`` timed ones."""
    for _ in range(warmup):
        fn(x)
    times = np.empty(reps)
    for i in range(reps):
        began = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - began
    return times


def summarise(times: np.ndarray, batch: int) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "img_s": float(batch * len(times) / times.sum()),
        "n": len(times),
    }


def session_options(threads: int, **overrides):
    """The Stylizer's options (:func:`artshift.inference.session_options`) + overrides."""
    from artshift.inference import session_options as stylizer_options

    options = stylizer_options(threads)
    for key, value in overrides.items():
        if key == "config":
            for entry, setting in value.items():
                options.add_session_config_entry(entry, setting)
        else:
            setattr(options, key, value)
    return options


def profile_top_ops(model: Path, label: str, threads: int, warmup: int, reps: int, top: int = 10) -> None:
    """Run ``model`` at 256 px batch 1 with ORT profiling on; print the ops with most total time."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads, enable_profiling=True)
        options.profile_file_prefix = str(Path(tmp) / "ort_profile")
        session = ort.InferenceSession(str(model), options, providers=CPU)
        x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32)
        feed = {session.get_inputs()[0].name: x}
        for _ in range(warmup + reps):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())

    # Node events carry the kernel time; drop the warm-up runs by keeping the last `reps`
    # model_run events' time window only.
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    timed = runs[-reps:]
    start = timed[0]["ts"] if timed else 0
    by_op: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    by_node: dict[tuple[str, str], float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or event["ts"] < start or not event["name"].endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        by_op[op] += event["dur"]
        calls[op] += 1
        by_node[(event["name"][: -len("_kernel_time")], op)] += event["dur"]
    total = sum(by_op.values())
    run_us = sum(r["dur"] for r in timed)
    print(f"\nORT profile: {label}, 256 px, batch 1, threads {threads}, {len(timed)} timed runs "
          f"(mean model_run {run_us / max(len(timed), 1) / 1e3:.1f} ms, "
          f"kernels {total / max(len(timed), 1) / 1e3:.1f} ms/run)")
    print(f"{'op type':<28}{'total ms':>10}{'ms/run':>9}{'calls/run':>11}{'share':>8}")
    for op, dur in sorted(by_op.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{op:<28}{dur / 1e3:>10.1f}{dur / 1e3 / len(timed):>9.2f}{calls[op] / len(timed):>11.0f}"
              f"{100 * dur / total:>7.1f}%")
    print(f"\ntop {top} nodes (after ORT's graph optimisations):")
    print(f"{'node':<52}{'op type':<24}{'ms/run':>8}{'share':>8}")
    for (node, op), dur in sorted(by_node.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{node[:51]:<52}{op:<24}{dur / 1e3 / len(timed):>8.2f}{100 * dur / total:>7.1f}%")


def sweep_options(model: Path, threads: int, warmup: int, reps: int, rounds: int) -> None:
    """fp32 256 px batch 1 under session-option variants, interleaved rounds, median of rounds."""
    import onnxruntime as ort

    variants = {
        "stylizer (ALL, intra=threads)": {},
        "intra_op_num_threads=0 (ORT default)": {"intra_op_num_threads": 0},
        "execution_mode=ORT_PARALLEL": {"execution_mode": ort.ExecutionMode.ORT_PARALLEL,
                                        "inter_op_num_threads": threads},
        "allow_spinning=1 (ORT default)": {"config": {"session.intra_op.allow_spinning": "1"}},
        "enable_mem_pattern=True (ORT default)": {"enable_mem_pattern": True},
        "set_denormal_as_zero=1": {"config": {"session.set_denormal_as_zero": "1"}},
        "dynamic_block_base=4": {"config": {"session.dynamic_block_base": "4"}},
        "enable_cpu_mem_arena=False": {"enable_cpu_mem_arena": False},
        "graph_optimization=EXTENDED": {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED},
        "graph_optimization=BASIC": {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC},
    }
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32)
    sessions = {}
    for name, overrides in variants.items():
        session = ort.InferenceSession(str(model), session_options(threads, **overrides), providers=CPU)
        feed = {session.get_inputs()[0].name: x}
        sessions[name] = (session, feed)
        for _ in range(warmup):
            session.run(None, feed)
    # Interleave the variants round by round so drift in machine speed hits all of them alike.
    medians: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for name, (session, feed) in sessions.items():
            times = time_runs(lambda f, session=session: session.run(None, f), feed, 0, reps)
            medians[name].append(float(np.median(times)))
    base = float(np.median(medians["stylizer (ALL, intra=threads)"]))
    print(f"\nsession options sweep: fp32, 256 px, batch 1, threads {threads}, "
          f"{rounds} interleaved rounds x {reps} runs, median of round medians")
    print(f"{'variant':<40}{'p50 ms':>9}{'vs stylizer':>13}")
    for name in variants:
        value = float(np.median(medians[name])) * 1e3
        print(f"{name:<40}{value:>9.1f}{(value / 1e3 / base - 1) * 100:>+12.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for every backend (default 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--reps", type=int, default=40,
                        help="timed runs at 256 px batch 1; scaled down by work per run for bigger ones")
    parser.add_argument("--min-reps", type=int, default=5, help="floor on timed runs per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per configuration")
    parser.add_argument("--rounds", type=int, default=10, help="turns the backends take per configuration")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--onnx", type=Path, default=DEFAULT_FP32,
                        help="fp32 ONNX model; exported from the generator to a temp file if missing")
    parser.add_argument("--int8", type=Path, default=None, help=f"int8 ONNX model (default {DEFAULT_INT8} if present)")
    parser.add_argument("--profile", action="store_true", help="ORT profiles at 256 px batch 1: top 10 ops")
    parser.add_argument("--sweep-options", action="store_true", help="time fp32 under ORT session-option variants")
    parser.add_argument("--sweep-rounds", type=int, default=5)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    from artshift.inference import Stylizer

    generator, origin = load_generator(args.checkpoint)
    tmp = tempfile.TemporaryDirectory()
    fp32_path = args.onnx
    if not fp32_path.is_file():
        from artshift.export import export_generator

        fp32_path = Path(tmp.name) / "generator.onnx"
        export_generator(generator, fp32_path, opset=18)
        origin_onnx = f"exported now to {fp32_path} ({args.onnx} missing)"
    else:
        origin_onnx = str(fp32_path)
    int8_path = args.int8 if args.int8 is not None else (DEFAULT_INT8 if DEFAULT_INT8.is_file() else None)
    if int8_path is not None and not int8_path.is_file():
        print(f"int8: {int8_path} not found", file=sys.stderr)
        int8_path = None

    @torch.inference_mode()
    def eager(x: np.ndarray) -> None:
        generator(torch.from_numpy(x))

    backends = {"torch eager": eager}
    fp32 = Stylizer(fp32_path, providers=CPU, threads=args.threads)
    backends["ORT fp32"] = fp32.run_array
    int8 = None
    if int8_path is not None:
        int8 = Stylizer(int8_path, providers=CPU, threads=args.threads)
        backends["ORT int8"] = int8.run_array

    import onnxruntime as ort

    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, threads {args.threads}")
    print(f"generator: {origin}")
    print(f"fp32: {origin_onnx} (provider {fp32.provider})")
    print(f"int8: {int8_path} (provider {int8.provider})" if int8 else "int8: not available")
    print(f"warm-up {args.warmup} run(s) per configuration; timed runs: --reps {args.reps} at 256 px batch 1, "
          f"scaled by work, min {args.min_reps}, the backends taking turns in {args.rounds} rounds\n")

    results: dict[tuple[int, int, str], list[np.ndarray]] = {}
    header = f"{'size':>5}{'batch':>6}  {'backend':<12}{'runs':>5}{'p50 ms':>10}{'p99 ms':>10}{'img/s':>9}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for size in args.sizes:
        for batch in args.batches:
            x = rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
            timed = time_interleaved(backends, x, args.warmup, repetitions(args, size, batch), args.rounds)
            for name, rounds in timed.items():
                stats = summarise(np.concatenate(rounds), batch)
                results[(size, batch, name)] = rounds
                print(f"{size:>5}{batch:>6}  {name:<12}{stats['n']:>5}{stats['p50_ms']:>10.1f}"
                      f"{stats['p99_ms']:>10.1f}{stats['img_s']:>9.2f}", flush=True)

    print("\nthroughput ratios (images/s vs torch eager; median of the rounds' ratios)")
    print(f"{'size':>5}{'batch':>6}{'fp32/eager':>12}{'int8/eager':>12}{'int8/fp32':>11}")
    for size in args.sizes:
        for batch in args.batches:
            eager, ort32 = results[(size, batch, "torch eager")], results[(size, batch, "ORT fp32")]
            if int8:
                q = results[(size, batch, "ORT int8")]
                extra = f"{speedup(eager, q):>11.2f}x{speedup(ort32, q):>10.2f}x"
            else:
                extra = f"{'n/a':>12}{'n/a':>11}"
            print(f"{size:>5}{batch:>6}{speedup(eager, ort32):>11.2f}x{extra}")
    if not int8:
        print("int8: not available")

    if args.profile:
        profile_top_ops(fp32_path, "fp32", args.threads, warmup=2, reps=args.reps)
        if int8_path is not None:
            profile_top_ops(int8_path, "int8", args.threads, warmup=2, reps=args.reps)
    if args.sweep_options:
        sweep_options(fp32_path, args.threads, warmup=2, reps=max(3, args.reps // 4), rounds=args.sweep_rounds)
    tmp.cleanup()


if __name__ == "__main__":
    main()
