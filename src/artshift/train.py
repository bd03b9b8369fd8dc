"""The training loop: discriminator and generator updated in alternation, top to bottom.

One loop for every method in the registry (:data:`artshift.models.METHODS`).
Reads the processed train images, logs losses and sample grids to the model's MLflow run,
watches sample diversity for mode collapse, writes resumable checkpoints, and finally the
generator file used by evaluate, export and inference. Re-running after a crash resumes from
the newest valid checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from PIL import Image

from artshift import checkpoint
from artshift.config import Params
from artshift.data.dataset import load_folder, unpaired_loader
from artshift.data.layout import processed_folder
from artshift.device import autocast, grad_scaler, resolve_device
from artshift.distributed import (
    World,
    average,
    current_world,
    plain,
    process_device,
    process_group,
    wrap_networks,
)
from artshift.errors import ParamsError
from artshift.files import write_text
from artshift.generator_io import INPUT_LABELS, GeneratorInput
from artshift.log import get_logger, progress
from artshift.metrics.diversity import collapse_warning, mean_pairwise_distance
from artshift.models import build_method
from artshift.models.gan import GANMethod
from artshift.visualize import side_by_side, tile

if TYPE_CHECKING:
    from artshift.tracking import Run  # importing MLflow is slow; only needed for the type

log = get_logger("train")
# Params that change how often we log or save, or where and how fast the same computation runs,
# not what it computes: changing them keeps checkpoints valid (a CPU run resumes on a GPU).
_BOOKKEEPING_KEYS = {"log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "n_samples",
                     "collapse_ratio", "device", "channels_last", "compile", "num_workers"}
# Training terms that are not losses, by name prefix, and the MLflow metric prefix of each.
_METRIC_GROUPS = (("lr_", "lr/"), ("grad_norm_", "grad_norm/"), ("d_real", "d_score/real"), ("d_fake", "d_score/fake"))
# Real paintings whose mutual distances set the diversity a generator's samples should reach.
DIVERSITY_REFERENCE = 64


@dataclass
class TrainResult:
    """What the stage reports: the last logged losses and the speed."""

    steps: int
    resumed_from: int
    seconds_per_step: float
    losses: dict[str, float]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the RNG that drives data sampling and the methods' draws."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build_optimizers(model: GANMethod, params: Params) -> dict[str, torch.optim.Optimizer]:
    """Adam for the discriminator(s), and one Adam for the generator side (G with CUT's PatchNCE
    heads, or CycleGAN's two generators: they share one objective).

    With ``train.lr_d`` set, D gets its own learning rate (the two time-scale update rule).
    """
    cfg = params.train
    betas = (cfg.beta1, cfg.beta2)
    return {
        "D": torch.optim.Adam(model.D.parameters(), lr=cfg.lr_d or cfg.lr, betas=betas),
        "G": torch.optim.Adam(model.generator_parameters(), lr=cfg.lr, betas=betas),
    }


def lr_factor(step: int, total: int, decay: bool) -> float:
    """Learning-rate multiplier: constant, then (with ``decay``) linear to 0 over the second half."""
    half = total // 2
    if not decay or step < half:
        return 1.0
    return max(0.0, 1.0 - (step - half) / (total - half))


@dataclass
class TrainState:
    """Everything a step changes, and so everything a checkpoint must hold to resume exactly."""

    model: GANMethod
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    ema: torch.nn.Module | None
    rng: torch.Generator  # on the CPU: the methods draw their random numbers there, whatever the device
    device: torch.device
    scaler: torch.amp.GradScaler

    @classmethod
    def create(cls, params: Params, rng: torch.Generator, image_size: int,
               device: torch.device | None = None) -> TrainState:
        """Fresh networks (on ``device``, default CPU), optimisers, schedules, loss scaler and
        (optionally) the EMA copy of G."""
        cfg = params.train
        device = device or torch.device("cpu")
        net = build_method(cfg, image_size).to(device)
        if cfg.channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizers = build_optimizers(net, params)
        schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg.steps,
                                                                                          cfg.lr_decay))
                      for name, opt in optimizers.items()}
        ema = copy.deepcopy(net.G).requires_grad_(False) if cfg.ema > 0 else None
        if cfg.compile:  # in place, after the EMA copy: state_dict keys and the EMA stay plain
            net.G.compile()
            for critic in ([net.D] if not isinstance(net.D, torch.nn.ModuleDict) else net.D.values()):
                critic.compile()
        return cls(net, optimizers, schedulers, ema, rng, device, grad_scaler(device, cfg.precision))

    @property
    def inference_generator(self) -> torch.nn.Module:
        """The generator to sample and export: the EMA average when enabled."""
        return self.ema if self.ema is not None else plain(self.model, "G")

    def state_dict(self) -> dict:
        """All tensors and RNG states of the run."""
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                "optimizers": checkpoint.module_states(self.optimizers),
                "schedulers": checkpoint.module_states(self.schedulers),
                "scaler": self.scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "data": self.rng.get_state(),
                        "numpy": np.random.get_state(), "python": random.getstate()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        for group in ("optimizers", "schedulers"):
            for name, obj in getattr(self, group).items():
                obj.load_state_dict(state[group][name])
        self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.rng.set_state(rng["data"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])


def dataset_hash(data_dir: Path) -> str:
    """sha256 over every file of the processed data set (relative path and bytes, in path order).

    It changes whenever the training data does: other images, another ``preprocess.load_size``,
    another split. (``manifest.csv`` alone does not: it lists the raw images.)
    """
    digest = hashlib.sha256()
    data_dir = Path(data_dir)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(data_dir).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def config_identity(params: Params, dataset_hash: str) -> dict:
    """Everything that shapes the weights (seed, training params but bookkeeping, the data's hash):
    kept in every checkpoint, so a mismatch can say what changed."""
    return {"seed": params.seed, "train": params.train.model_dump(exclude=_BOOKKEEPING_KEYS), "data": dataset_hash}


def _hash(identity: dict) -> str:
    """The fingerprint of a :func:`config_identity`: a checkpoint resumes only a run with the same."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _flat(identity: dict) -> dict:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": 1}``; the data hash is named after what it stands for."""
    flat = {"train data (data/processed)" if key == "data" else key: value
            for key, value in identity.items() if not isinstance(value, dict)}
    for section, values in identity.items():
        if isinstance(values, dict):
            flat |= {f"{section}.{key}": value for key, value in values.items()}
    return flat


def describe_changes(saved: dict | None, current: dict) -> str:
    """What differs between a checkpoint's identity and this run's, e.g. ``train.method cut → cyclegan``."""
    if not saved:
        return "other params or data"
    old, new = _flat(saved), _flat(current)
    changes = [key if key.startswith("train data") else f"{key} {old.get(key)!r} → {new.get(key)!r}"
               for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    return ", ".join(changes) or "other params or data"


@dataclass
class History:
    """What a run has done so far, kept in every checkpoint: the stage's outputs are rebuilt from
    it when a run resumes (DVC deletes them before the stage runs)."""

    step: int = 0
    losses: list[dict] = field(default_factory=list)  # the logged rows of the loss curve
    train_seconds: float = 0.0  # time spent in training steps, over all resumes


def _resume(folder: Path, identity: dict, state: TrainState) -> History:
    """Load the newest valid checkpoint into ``state`` and return its history (empty without one).

    Checkpoints of another configuration (another method, image size, other params or data) are
    refused with a warning naming what changed, and deleted.
    """
    checkpoint.remove_partial(folder)
    saved = checkpoint.load_latest(folder)
    if saved is None:
        return History()
    if saved.get("fingerprint") != _hash(identity):
        log.warning("not resuming the checkpoints in %s: they belong to another run (%s); starting over",
                    folder, describe_changes(saved.get("config"), identity))
        checkpoint.prune(folder, keep=0)
        return History()
    state.load_state_dict(saved["state"])
    log.info("resumed from checkpoint at step %d", saved["step"])
    return History(saved["step"], saved["loss_history"], saved["train_seconds"])


def _save_checkpoint(folder: Path, identity: dict, state: TrainState, keep: int, history: History) -> None:
    checkpoint.save({"kind": "train", "step": history.step, "fingerprint": _hash(identity), "config": identity,
                     "state": state.state_dict(), "loss_history": history.losses,
                     "train_seconds": history.train_seconds}, checkpoint.step_path(folder, history.step))
    checkpoint.prune(folder, keep)


def fixed_inputs(model: GANMethod, photos: torch.Tensor, seed: int,
                 paintings: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The generator's arguments for the progress grids: test photos; for a generator that takes
    a style image too, each photo with a test painting (``paintings`` in turn); for one that
    takes noise, fixed z (drawn from its own seeded RNG, so it does not shift the training's stream)."""
    takes = model.G.takes
    if takes is GeneratorInput.NOISE:
        return (model.noise(len(photos), torch.Generator().manual_seed(seed)),)
    if takes is GeneratorInput.PHOTO_AND_STYLE:
        return photos, paintings[torch.arange(len(photos)) % len(paintings)]
    return (photos,)


@torch.no_grad()
def render_samples(generator: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, Image.Image]:
    """G's outputs for fixed inputs and their grid: the inputs (photo, and style image) beside
    the outputs, or a tile of samples for noise inputs (G in eval mode, then back to train)."""
    generator.eval()
    outputs = generator(*inputs)
    generator.train()
    if generator.takes is GeneratorInput.NOISE:
        return outputs, tile(outputs)
    return outputs, side_by_side([*inputs, outputs], labels=[*INPUT_LABELS[generator.takes], "model"])


def _to_device(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A loader batch on the training device (asynchronously from pinned memory on CUDA)."""
    batch = batch.to(device, non_blocking=True)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def _descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
             network: torch.nn.Module) -> torch.Tensor:
    """Back-propagate ``loss`` (scaled), unscale the gradients, and step ``optimizer`` (a step the
    scaler finds inf/NaN gradients in is skipped); returns the norm of ``network``'s gradients."""
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grads = [p.grad.detach().flatten() for p in network.parameters() if p.grad is not None]
    norm = torch.cat(grads).norm() if grads else torch.zeros(())
    scaler.step(optimizer)
    return norm


def ema_decay(step: int, target: float) -> float:
    """EMA decay at ``step`` (1-based): (1 + step) / (10 + step), capped at ``target``.

    The warm-up keeps a short run's average from being dominated by the random initial
    weights: with a fixed 0.999, they would still weigh 0.999^1000 ≈ 37% after 1 000 steps.
    """
    return min(target, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, live: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 - decay)·live, parameter by parameter; buffers (batch-norm running
    statistics) are copied, since they are estimates, not weights."""
    for averaged, current in zip(ema.parameters(), live.parameters()):
        averaged.lerp_(current, 1.0 - decay)
    for averaged, current in zip(ema.buffers(), live.buffers()):
        averaged.copy_(current)


def train_step(state: TrainState, real_a: torch.Tensor, real_b: torch.Tensor,
               step: int) -> dict[str, torch.Tensor | float]:
    """One alternation: update D on real vs fake paintings, then G against the new D.

    Forward passes run under the configured autocast; with fp16 the losses are scaled (one
    scaler for both optimisers, updated once per step, as PyTorch's AMP recipe for several
    optimisers does) and gradients unscaled before their norms are taken. Returns the loss
    terms, D's mean scores and gradient norms as detached tensors (read them only when logging,
    so a GPU step does not wait for the host), and the learning rates.
    """
    model, optimizers, rng, scaler = state.model, state.optimizers, state.rng, state.scaler
    precision = autocast(state.device, model.cfg.precision)
    model.grad_scale = scaler.get_scale() if scaler.is_enabled() else 1.0
    with precision:
        fakes = model.generate(real_a, real_b, rng)

    critics, generator = plain(model, "D"), plain(model, "G")  # not their DDP wrappers
    critics.requires_grad_(True)
    optimizers["D"].zero_grad(set_to_none=True)
    with precision:
        d_terms = model.d_losses(real_a, real_b, fakes, rng)
    grad_d = _descend(d_terms["d_total"], optimizers["D"], scaler, critics)

    critics.requires_grad_(False)
    optimizers["G"].zero_grad(set_to_none=True)
    with precision:
        g_terms = model.g_losses(real_a, real_b, fakes, rng)
    grad_g = _descend(g_terms["g_total"], optimizers["G"], scaler, generator)
    scaler.update()
    if state.ema is not None:
        update_ema(state.ema, generator, ema_decay(step, model.cfg.ema))
    for scheduler in state.schedulers.values():
        scheduler.step()
    return {**{name: value.detach() for name, value in (d_terms | g_terms).items()},
            "grad_norm_d": grad_d, "grad_norm_g": grad_g,
            "lr_d": optimizers["D"].param_groups[0]["lr"], "lr_g": optimizers["G"].param_groups[0]["lr"]}


def metric_name(term: str) -> str:
    """The MLflow name of a logged training term: learning rates under ``lr/``, gradient norms
    under ``grad_norm/``, D's mean scores under ``d_score/`` and the losses under ``loss/``
    (``lr_g`` → ``lr/g``, ``d_real_a`` → ``d_score/real_a``, ``nce`` → ``loss/nce``)."""
    for start, group in _METRIC_GROUPS:
        if term.startswith(start):
            return group + term.removeprefix(start)
    return f"loss/{term}"


def watch_samples(generator: torch.nn.Module, inputs: tuple[torch.Tensor, ...], reference_diversity: float,
                  ratio: float, step: int, run: Run | None) -> float:
    """Render the fixed inputs, log the grid and the samples' diversity, warn on mode collapse."""
    outputs, grid = render_samples(generator, inputs)
    diversity = mean_pairwise_distance(outputs)
    log.info("step %d sample diversity %.4f (paintings %.4f)", step, diversity, reference_diversity)
    warning = collapse_warning(diversity, reference_diversity, ratio)
    if warning:
        log.warning("step %d: %s", step, warning)
    if run:
        run.log_metrics({"samples/diversity": diversity, "samples/diversity_ratio": diversity / reference_diversity},
                        step=step)
        run.log_image(grid, key="samples", step=step)
    return diversity


class LossCurve:
    """The logged losses as a CSV (one row per logged step) for ``dvc plots``.

    Its rows are kept in every checkpoint, not read back from the CSV: a resumed run must write
    the whole curve, even when it resumes at the last step and trains none. The file is written
    once, with the other outputs at the end, so a run that fails leaves the previous curve.
    """

    def __init__(self, path: Path | None, rows: list[dict]):
        self.path = path
        self.rows = list(rows)

    def add(self, step: int, losses: dict[str, float]) -> None:
        """Append one row (the file is written by :meth:`write`)."""
        self.rows.append({"step": step, **losses})

    def write(self) -> None:
        """Write the file atomically (when there is a file and something to write)."""
        if self.path and self.rows:
            write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))

    def last(self) -> dict[str, float]:
        """The last logged losses (empty before any)."""
        return {key: value for key, value in self.rows[-1].items() if key != "step"} if self.rows else {}


def train(params: Params, data_dir: Path, checkpoint_dir: Path, generator_path: Path, dataset_hash: str = "",
          run: Run | None = None, loss_csv: Path | None = None) -> TrainResult:
    """Train ``train.method`` on the processed data in ``data_dir``; keep resumable checkpoints
    in ``checkpoint_dir`` and write the final generator to ``generator_path``.

    ``dataset_hash`` (the preprocess manifest's sha256) ties checkpoints to the data they saw;
    ``loss_csv`` receives the loss curve for ``dvc plots``. Under torchrun every process calls
    this; only rank 0 logs (to ``run`` too) and writes files, the others get ``run=None``.
    """
    world = current_world()
    if world.size > 1 and world.size != params.train.gpus:
        raise ParamsError(f"train.gpus: {params.train.gpus}, but torchrun started {world.size} processes; set it to "
                          "the total number of processes (it is part of the run's identity: batch_size is per process)")
    device = process_device(world, resolve_device(params.train.device, "train.device"))
    with process_group(world, device):
        return _train(params, data_dir, checkpoint_dir, generator_path, dataset_hash, run, loss_csv, world, device)


def _train(params: Params, data_dir: Path, checkpoint_dir: Path, generator_path: Path, dataset_hash: str,
           run: Run | None, loss_csv: Path | None, world: World, device: torch.device) -> TrainResult:
    cfg = params.train
    rng = seed_everything(params.seed)
    size = params.crop_size
    paintings_dir = processed_folder(data_dir, "train", "paintings")
    sample_photos = load_folder(processed_folder(data_dir, "test", "photos"), cfg.n_samples, size).to(device)
    sample_paintings = load_folder(processed_folder(data_dir, "test", "paintings"), cfg.n_samples, size).to(device)
    reference_diversity = mean_pairwise_distance(load_folder(paintings_dir, DIVERSITY_REFERENCE, size))

    state = TrainState.create(params, rng, image_size=size, device=device)
    inputs = fixed_inputs(state.model, sample_photos, params.seed, sample_paintings)
    identity = config_identity(params, dataset_hash)
    resumed = _resume(checkpoint_dir, identity, state)  # every process loads the same checkpoint
    start = resumed.step
    if world.size > 1:
        wrap_networks(state.model, device)
    # The step is the data stream's position: resuming at step s reads on from sample s·batch·processes.
    loader = unpaired_loader(processed_folder(data_dir, "train", "photos"), paintings_dir, size, cfg.batch_size,
                             params.seed, start_step=start, num_workers=cfg.num_workers,
                             pin_memory=device.type == "cuda", rank=world.rank, world=world.size)
    batches = iter(loader)
    curve = LossCurve(loss_csv if world.is_main else None, resumed.losses)
    state.model.train()
    log.info("method %s on %s (%s%s%s), %d px crops, batch %d per process × %d, %d loader workers", cfg.method,
             device, cfg.precision, ", channels_last" if cfg.channels_last else "", ", compiled" if cfg.compile else "",
             size, cfg.batch_size, world.size, cfg.num_workers)
    log.info("GAN loss %s, R1 %g, DiffAugment %s, EMA %g, spectral norm %s, lr decay %s",
             cfg.gan_loss, cfg.r1_gamma, cfg.diffaugment or "off", cfg.ema, cfg.spectral_norm, cfg.lr_decay)

    losses: dict[str, float] = {}
    began = time.perf_counter()
    for step in progress(range(start + 1, cfg.steps + 1), desc="train", total=cfg.steps - start):
        real_a, real_b = (_to_device(batch, device, cfg.channels_last) for batch in next(batches))
        terms = train_step(state, real_a, real_b, step)
        if step % cfg.log_every == 0 or step == cfg.steps:
            losses = {name: float(value) for name, value in average(terms, world, device).items()}
            if world.is_main:
                log.info("step %d/%d %s", step, cfg.steps, " ".join(f"{k}={v:.4g}" for k, v in losses.items()))
                curve.add(step, losses)
                if run:
                    run.log_metrics({metric_name(k): v for k, v in losses.items()}, step=step)
        if world.is_main and (step % cfg.sample_every == 0 or step == cfg.steps):
            watch_samples(state.inference_generator, inputs, reference_diversity, cfg.collapse_ratio, step, run)
        if world.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            seconds = resumed.train_seconds + time.perf_counter() - began
            _save_checkpoint(checkpoint_dir, identity, state, cfg.keep_checkpoints,
                             History(step, curve.rows, seconds))
    elapsed = time.perf_counter() - began
    per_step = (resumed.train_seconds + elapsed) / cfg.steps  # over every step of the run, resumed or not

    if world.is_main:  # every output again, even after resuming at the last step
        if run:  # tracking before the outputs go in: a store failure leaves the previous ones
            run.log_metrics({"train/seconds_per_step": per_step})
        curve.write()
        checkpoint.save(checkpoint.generator_record(state.inference_generator, method=cfg.method,
                                                    ema=cfg.ema > 0, step=cfg.steps,
                                                    image_size=size), generator_path)
    log.info("trained %d steps in %.1f s (%.3f s/step over the run); wrote %s", cfg.steps - start, elapsed, per_step,
             generator_path)
    return TrainResult(steps=cfg.steps, resumed_from=start, seconds_per_step=per_step, losses=losses or curve.last())
