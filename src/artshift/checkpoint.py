"""The one checkpoint format: a dict saved with ``torch.save``, written atomically.

The bytes depend on the contents alone: ``torch.save`` names the zip archive's root folder after
the file name it is given, so it is given an open file instead (root ``archive``); saving straight
to the atomic writer's random temporary name made every save differ.

Two kinds share it (``kind`` key): ``train`` checkpoints carry everything needed to resume
(networks, optimisers, RNG states, step); the ``generator`` file carries just what inference,
evaluation and export need (architecture + weights).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from artshift.errors import ArtShiftError
from artshift.files import save_with
from artshift.log import get_logger
from artshift.models import GENERATORS

_STEP_FILE = re.compile(r"step_(\d+)\.pt$")
log = get_logger("checkpoint")


class _WholeWrites:
    """A file whose ``write`` writes every byte or raises: on a full disk the last write(2) is short
    and only the next one fails with ``ENOSPC``, and torch's zip writer reports a short write as
    ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data) -> int:
        """Write all of ``data`` (os.write until done); a full disk raises ``OSError(ENOSPC)``."""
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            view = view[os.write(self.fd, view):]
        return total

    def flush(self) -> None:
        """Nothing is buffered here."""


def _torch_save(obj: dict, path: Path) -> None:
    """``torch.save`` into a :class:`_WholeWrites` file, not a file name: its C++ writer reports a full
    disk as ``unexpected pos``; this way the write raises ``OSError(ENOSPC)`` (torch's attempt to
    close the archive after it raises that message again; the OSError is what goes up), which
    :func:`artshift.files.atomic_path` reports naming the file."""
    with open(path, "wb", buffering=0) as handle:
        try:
            torch.save(obj, _WholeWrites(handle.fileno()))
        except RuntimeError as exc:  # torch's writer closes the archive after our OSError and fails again
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise


def save(obj: dict, path: str | Path) -> None:
    """Save a checkpoint dict atomically (temp file + rename); a full disk is one line naming ``path``."""
    save_with(path, lambda tmp: _torch_save(obj, tmp))


def load(path: str | Path, kind: str) -> dict:
    """Load a checkpoint of ``kind``; a missing, corrupt or foreign file is an ArtShiftError."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ArtShiftError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # torch raises many types for a damaged file
        raise ArtShiftError(f"{path}: unreadable checkpoint ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        raise ArtShiftError(f"{path}: not an ArtShift {kind} checkpoint")
    return obj


def generator_record(generator: nn.Module, **extra: object) -> dict:
    """The ``generator`` checkpoint: network class and its ``arch`` (constructor arguments, to
    rebuild the module) plus weights."""
    return {"kind": "generator", "network": type(generator).__name__, "arch": generator.arch,
            "state_dict": generator.state_dict(), **extra}


def load_generator(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the generator saved by training, in eval mode, and return it with its record."""
    record = load(path, "generator")
    network = record.get("network")
    if network not in GENERATORS:
        raise ArtShiftError(f"{path}: unknown generator network {network!r}")
    generator = GENERATORS[network](**record["arch"])
    generator.load_state_dict(record["state_dict"])
    return generator.eval(), record


def step_path(folder: Path, step: int) -> Path:
    """Where the training checkpoint of ``step`` lives."""
    return folder / f"step_{step:07d}.pt"


def list_steps(folder: Path) -> list[Path]:
    """Training checkpoints in ``folder``, oldest first."""
    return sorted(p for p in folder.glob("step_*.pt") if _STEP_FILE.search(p.name))


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` training checkpoints."""
    paths = list_steps(folder)
    for path in paths[: max(len(paths) - keep, 0)]:
        path.unlink(missing_ok=True)


def remove_partial(folder: Path) -> None:
    """Delete the temporary files of saves that a killed run left half-written (``.step_*.tmp``):
    they are never read as checkpoints, but each is as large as one."""
    for path in folder.glob(".step_*.tmp"):
        log.info("removing %s, a checkpoint a stopped run left half-written", path.name)
        path.unlink(missing_ok=True)


def load_latest(folder: Path) -> dict | None:
    """Newest readable training checkpoint; a corrupt newest one is reported and skipped."""
    for path in reversed(list_steps(folder)):
        try:
            return load(path, "train")
        except ArtShiftError as exc:
            log.warning("skipping corrupt checkpoint: %s", exc)
    return None


def module_states(modules: dict[str, nn.Module]) -> dict[str, dict]:
    """state_dicts of a name → module mapping (networks or optimisers)."""
    return {name: module.state_dict() for name, module in modules.items()}
