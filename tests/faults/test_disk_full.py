"""Disk full while writing an output, on a real full file system (a 1 MiB tmpfs; root only): the
previous output stays byte for byte, nothing half-written is left, the error is one line naming
the file."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from artshift import checkpoint
from artshift.cli import main as cli_main
from artshift.data.prepare import prepare_dataset
from artshift.errors import ResourceError, run_main

pytestmark = pytest.mark.faults


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at ``tmp_path/disk``, nearly filled by ``filler``; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:80]})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk, leave: int) -> None:
    """Fill ``disk`` until only about ``leave`` bytes are free."""
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(bytes(max(stat.f_bavail * stat.f_frsize - leave, 0)))


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "filler"}


def test_stylize_onto_a_full_disk_keeps_the_old_output(small_disk, tmp_path, tiny_onnx, capsys, fault):
    """Disk full: artshift stylize --force over an existing output"""
    photo = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(photo)
    Image.new("RGB", (400, 300), (1, 2, 3)).save(small_disk / "big.png")
    before = snapshot(small_disk)
    fill(small_disk, leave=64 * 1024)  # the stylised noise needs ~360 KB as PNG
    code = cli_main(["stylize", str(photo), "--out", str(small_disk), "--model", str(tiny_onnx), "--force"])
    err = capsys.readouterr().err.strip().splitlines()
    kept = snapshot(small_disk) == before
    fault.trial(survived=code == 1 and err[-1] == f"error: {small_disk / 'big.png'}: no space left on device; "
                "free some space and run again", lost=not kept)
    assert kept and fault.survived, err


def test_a_checkpoint_save_onto_a_full_disk_keeps_the_old_one(small_disk, capsys, fault):
    """Disk full: a checkpoint save"""
    path = small_disk / "generator.pt"
    checkpoint.save({"kind": "generator", "w": torch.zeros(100)}, path)
    before = snapshot(small_disk)
    fill(small_disk, leave=16 * 1024)
    code = run_main(checkpoint.save, {"kind": "generator", "w": torch.ones(100_000)}, path)
    kept = snapshot(small_disk) == before
    fault.trial(survived=code == 1 and "no space left on device" in capsys.readouterr().err, lost=not kept)
    assert kept and fault.survived


def test_preprocess_onto_a_full_disk_keeps_the_old_folder(small_disk, tmp_path, fault):
    """Disk full: the preprocess stage's folder swap"""
    raw = tmp_path / "raw"
    rng = np.random.default_rng(0)
    for domain in ("photos", "paintings"):
        (raw / domain).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(raw / domain / f"{i}.png")
    out = small_disk / "processed"
    prepare_dataset(raw, out, load_size=16, test_fraction=0.3, min_size=8, seed=0)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    fill(small_disk, leave=32 * 1024)
    with pytest.raises(ResourceError, match="no space left on device"):
        prepare_dataset(raw, out, load_size=64, test_fraction=0.3, min_size=8, seed=0)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    leftovers = [p.name for p in small_disk.iterdir() if p.name not in ("filler", "processed")]
    fault.trial(survived=not leftovers, lost=after != before)
    assert after == before and not leftovers, leftovers
