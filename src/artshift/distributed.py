"""Several GPUs: one process per GPU under ``torchrun``, networks in DistributedDataParallel.

``train.gpus > 1`` makes the train stage re-launch itself under ``torch.distributed.run``
(:func:`launch`), one process per GPU on this machine; several machines run the same script
under ``torchrun`` with its rendezvous flags. Each process trains on its own share of every
batch (:class:`artshift.data.dataset.StreamSampler`); DDP averages the gradients, so N processes
with batch B take the steps one process with batch N·B would. Rank 0 alone logs, writes
checkpoints and the generator. On a machine without GPUs the same code runs N CPU processes
with the ``gloo`` backend, which is how it is tested.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from artshift.log import get_logger

log = get_logger("distributed")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun's environment variables)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0


def current_world() -> World:
    """The world torchrun describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (one process if unset)."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def launch(processes: int, script: str) -> None:
    """Re-run ``script`` under ``torch.distributed.run`` with ``processes`` processes on this
    machine, unless it already runs under torchrun or needs a single process. Does not return
    when it re-launches: the current process becomes torchrun."""
    if processes <= 1 or "WORLD_SIZE" in os.environ:
        return
    log.info("launching %d training processes under torch.distributed.run", processes)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc_per_node={processes}", script])


def process_device(world: World, device: torch.device) -> torch.device:
    """The device this process trains on: ``cuda:LOCAL_RANK`` for CUDA with several processes."""
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """The process group for a multi-process run (NCCL on GPUs, gloo on CPUs); nothing for one process."""
    if world.size == 1:
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        dist.barrier()  # nobody leaves while rank 0 still writes the final files
    finally:
        dist.destroy_process_group()


class _Distributed(DistributedDataParallel):
    """DDP whose missing attributes come from the wrapped network (``encode``, ``takes``,
    ``layers``...), so a method's code reads the same with and without it."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap_networks(model: nn.Module, device: torch.device) -> None:
    """Put each trainable network of a method (G, D, F, G_BA; each discriminator of a
    ``ModuleDict``) in DistributedDataParallel, in place.

    The wrappers are bound as plain attributes, shadowing the registered modules: the method's
    ``self.G(x)`` goes through DDP, while ``state_dict()``, ``parameters()`` and
    :func:`plain` still see the plain networks, so checkpoints are the same whatever the number
    of processes.
    """
    device_ids = [device.index] if device.type == "cuda" else None

    def wrap(network: nn.Module) -> nn.Module:
        return _Distributed(network, device_ids=device_ids)

    for name, child in list(model.named_children()):
        if not any(p.requires_grad for p in child.parameters()):
            continue
        if isinstance(child, nn.ModuleDict):
            object.__setattr__(model, name, {key: wrap(network) for key, network in child.items()})
        else:
            object.__setattr__(model, name, wrap(child))


def plain(model: nn.Module, name: str) -> nn.Module:
    """The network registered as ``name`` in ``model``, not the DDP wrapper that may shadow it."""
    return model._modules[name]


def average(values: dict[str, torch.Tensor | float], world: World,
            device: torch.device) -> dict[str, torch.Tensor | float]:
    """The mean of each value over all processes (for logging: each process saw its own batch)."""
    if world.size == 1:
        return values
    names = list(values)
    stacked = torch.stack([torch.as_tensor(values[name], dtype=torch.float64, device=device) for name in names])
    dist.all_reduce(stacked)
    return dict(zip(names, (stacked / world.size).tolist(), strict=True))
