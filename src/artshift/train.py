"""The training loop: discriminator and generator updated in alternation, top to bottom.

Reads the processed train images, trains CUT, logs losses and sample grids to the model's
MLflow run, writes resumable checkpoints, and finally the generator file used by evaluate,
export and inference. Re-running after a crash resumes from the newest valid checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from artshift import checkpoint
from artshift.config import Params
from artshift.data.dataset import UnpairedBatches, load_folder
from artshift.files import write_text
from artshift.log import get_logger, progress
from artshift.models.cut import CUT
from artshift.visualize import side_by_side

if TYPE_CHECKING:
    from artshift.tracking import Run  # importing MLflow is slow; only needed for the type

log = get_logger("train")
# Params that change how often we log or save, not the weights: changing them keeps checkpoints valid.
_BOOKKEEPING_KEYS = {"log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "n_samples"}


@dataclass
class TrainResult:
    """What the stage reports: the last logged losses and the speed."""

    steps: int
    resumed_from: int
    seconds_per_step: float
    losses: dict[str, float]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the generator that drives data sampling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build_optimizers(model: CUT, params: Params) -> dict[str, torch.optim.Optimizer]:
    """Adam for D, and one Adam for G together with the PatchNCE heads F (they share a loss)."""
    cfg = params.train
    betas = (cfg.beta1, cfg.beta2)
    return {
        "D": torch.optim.Adam(model.D.parameters(), lr=cfg.lr, betas=betas),
        "G": torch.optim.Adam([*model.G.parameters(), *model.F.parameters()], lr=cfg.lr, betas=betas),
    }


def _rng_state(generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "data": generator.get_state(),
            "numpy": np.random.get_state(), "python": random.getstate()}


def _restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def config_fingerprint(params: Params, dataset_hash: str) -> str:
    """Hash of everything that shapes the weights: a checkpoint resumes only a matching run."""
    train_cfg = params.train.model_dump(exclude=_BOOKKEEPING_KEYS)
    blob = json.dumps({"seed": params.seed, "train": train_cfg, "data": dataset_hash},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _resume(folder: Path, fingerprint: str, model: CUT, optimizers: dict, generator: torch.Generator) -> int:
    """Load the newest valid checkpoint into model and optimisers; return its step (0 if none).

    Checkpoints of another configuration (other params or data) are deleted, not resumed.
    """
    state = checkpoint.load_latest(folder)
    if state is None:
        return 0
    if state.get("fingerprint") != fingerprint:
        log.info("discarding checkpoints of a different configuration in %s", folder)
        checkpoint.prune(folder, keep=0)
        return 0
    model.load_state_dict(state["model"])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    _restore_rng(state["rng"], generator)
    log.info("resumed from checkpoint at step %d", state["step"])
    return state["step"]


def _save_checkpoint(folder: Path, fingerprint: str, step: int, model: CUT, optimizers: dict,
                     generator: torch.Generator, keep: int) -> None:
    checkpoint.save({"kind": "train", "step": step, "fingerprint": fingerprint, "arch": model.arch,
                     "model": model.state_dict(),
                     "optimizers": checkpoint.module_states(optimizers), "rng": _rng_state(generator)},
                    checkpoint.step_path(folder, step))
    checkpoint.prune(folder, keep)


@torch.no_grad()
def render_samples(model: CUT, photos: torch.Tensor):
    """Grid of fixed photos beside their translation (G in eval mode, then back to train)."""
    model.G.eval()
    grid = side_by_side([photos, model.G(photos)])
    model.G.train()
    return grid


def train_step(model: CUT, optimizers: dict, real_a: torch.Tensor, real_b: torch.Tensor,
               generator: torch.Generator) -> dict[str, float]:
    """One alternation: update D on real vs fake paintings, then G (and F) against the new D."""
    fake_b, idt_b = model.translate(real_a, real_b)

    model.D.requires_grad_(True)
    optimizers["D"].zero_grad(set_to_none=True)
    d_loss = model.d_loss(real_b, fake_b)
    d_loss.backward()
    optimizers["D"].step()

    model.D.requires_grad_(False)
    optimizers["G"].zero_grad(set_to_none=True)
    terms = model.g_losses(real_a, real_b, fake_b, idt_b, generator)
    terms["g_total"].backward()
    optimizers["G"].step()
    return {"d": d_loss.item(), **{name: value.item() for name, value in terms.items()}}


class LossCurve:
    """The logged losses as a CSV (one row per logged step) for ``dvc plots``; survives resume."""

    def __init__(self, path: Path | None, resumed_from: int):
        self.path = path
        self.rows: list[dict] = []
        if path and resumed_from and path.is_file():
            self.rows = [r for r in pd.read_csv(path).to_dict("records") if r["step"] <= resumed_from]

    def add(self, step: int, losses: dict[str, float]) -> None:
        """Append one row and rewrite the file atomically."""
        self.rows.append({"step": step, **losses})
        if self.path:
            write_text(self.path, pd.DataFrame(self.rows).to_csv(index=False))


def train(params: Params, data_dir: Path, out_dir: Path, dataset_hash: str = "", run: Run | None = None,
          loss_csv: Path | None = None) -> TrainResult:
    """Train CUT photo → painting; write checkpoints and ``out_dir/generator.pt``.

    ``dataset_hash`` (the preprocess manifest's sha256) ties checkpoints to the data they saw;
    ``loss_csv`` receives the loss curve for ``dvc plots``.
    """
    cfg = params.train
    generator = seed_everything(params.seed)
    photos = load_folder(data_dir / "train" / "photos")
    paintings = load_folder(data_dir / "train" / "paintings")
    sample_photos = load_folder(data_dir / "test" / "photos", limit=cfg.n_samples)
    log.info("loaded %d photos and %d paintings at %d px", len(photos), len(paintings), photos.shape[-1])

    model = CUT(cfg)
    optimizers = build_optimizers(model, params)
    ckpt_dir = out_dir / "checkpoints"
    fingerprint = config_fingerprint(params, dataset_hash)
    start = _resume(ckpt_dir, fingerprint, model, optimizers, generator)
    batches = UnpairedBatches(photos, paintings, cfg.batch_size, generator)
    curve = LossCurve(loss_csv, start)
    model.train()

    losses: dict[str, float] = {}
    began = time.perf_counter()
    for step in progress(range(start + 1, cfg.steps + 1), desc="train", total=cfg.steps - start):
        real_a, real_b = batches.next()
        losses = train_step(model, optimizers, real_a, real_b, generator)
        if step % cfg.log_every == 0 or step == cfg.steps:
            log.info("step %d/%d %s", step, cfg.steps, " ".join(f"{k}={v:.4f}" for k, v in losses.items()))
            curve.add(step, losses)
            if run:
                run.log_metrics({f"loss/{k}": v for k, v in losses.items()}, step=step)
        if run and (step % cfg.sample_every == 0 or step == cfg.steps):
            run.log_image(render_samples(model, sample_photos), f"samples/step_{step:07d}.png")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(ckpt_dir, fingerprint, step, model, optimizers, generator, cfg.keep_checkpoints)
    elapsed = time.perf_counter() - began

    checkpoint.save(checkpoint.generator_record(model.G, model.arch, method="cut", step=cfg.steps,
                                                image_size=photos.shape[-1]), out_dir / "generator.pt")
    done = cfg.steps - start
    per_step = elapsed / done if done else 0.0
    log.info("trained %d steps in %.1f s (%.3f s/step); wrote %s", done, elapsed, per_step, out_dir / "generator.pt")
    return TrainResult(steps=cfg.steps, resumed_from=start, seconds_per_step=per_step, losses=losses)
