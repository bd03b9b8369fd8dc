import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from artshift.errors import ResourceError, run_main
from artshift.files import atomic_dir, atomic_files, atomic_path, exclusive_lock, sha256_file, write_json


@pytest.fixture
def full_disk(monkeypatch):
    """Temporary files are links to /dev/full: every write to them fails with ENOSPC, as on a full disk."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")

    def mkstemp(prefix="", suffix="", dir=None):
        link = Path(dir) / f"{prefix}full{suffix}"
        link.symlink_to("/dev/full")
        return os.open(os.devnull, os.O_RDONLY), str(link)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "stale.txt").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("y")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    with pytest.raises(ValueError), atomic_dir(target) as tmp:
        (tmp / "partial.txt").write_text("z")
        raise ValueError
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path):
    """A SIGKILLed writer cannot clean up: the next write into the folder removes its temporary
    files and folders (named with its dead pid), and keeps a live writer's and everything else."""
    script = ("import os, sys\nfrom pathlib import Path\nfrom artshift.files import atomic_dir, atomic_path\n"
              "folder = Path(sys.argv[1])\n"
              "with atomic_path(folder / 'model.bin') as tmp, atomic_dir(folder / 'raw') as new:\n"
              "    tmp.write_bytes(b'half'); (new / 'x.png').write_bytes(b'half'); os.kill(os.getpid(), 9)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True)
    assert killed.returncode == -9
    left = sorted(re.sub(r"\.\d+\.\w+\.tmp$", ".<pid>.tmp", p.name) for p in tmp_path.iterdir())
    assert left == [".model.bin.<pid>.tmp", ".raw.<pid>.tmp", ".raw.lock"]
    live = tmp_path / f".other.png.{os.getpid()}.abcd1234.tmp"
    live.write_bytes(b"a live writer's")
    (tmp_path / ".hidden.tmp").write_bytes(b"not ours")
    write_json(tmp_path / "metrics.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".hidden.tmp", ".raw.lock", live.name,
                                                                 "metrics.json"])
    with atomic_dir(tmp_path / "raw"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".hidden.tmp", live.name, "metrics.json", "raw"])


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_files_and_folders_respect_the_umask(tmp_path, umask_022):
    with atomic_dir(tmp_path / "raw") as tmp:
        write_json(tmp / "manifest.json", {})
    assert stat.S_IMODE((tmp_path / "raw").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "raw" / "manifest.json").stat().st_mode) == 0o644


def test_a_second_folder_build_waits_for_the_first(tmp_path):
    """Two runs building the same folder take turns: the second starts after the first swapped in."""
    target = tmp_path / "processed"
    seen_at_start = {}

    def build(name: str, hold_s: float) -> None:
        with atomic_dir(target) as tmp:
            seen_at_start[name] = sorted(p.name for p in target.iterdir()) if target.exists() else None
            (tmp / f"{name}.csv").write_text(name)
            time.sleep(hold_s)

    first = threading.Thread(target=build, args=("a", 0.3))
    first.start()
    time.sleep(0.1)
    build("b", 0)
    first.join()
    assert seen_at_start == {"a": None, "b": ["a.csv"]}
    assert sorted(p.name for p in target.iterdir()) == ["b.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed"]


def test_exclusive_lock_is_released_on_error_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError), exclusive_lock(tmp_path / "x.lock"):
        raise ValueError
    with exclusive_lock(tmp_path / "x.lock"):
        assert (tmp_path / "x.lock").exists()
    assert list(tmp_path.iterdir()) == []


def test_exclusive_lock_excludes_under_contention(tmp_path):
    counter = tmp_path / "n"
    counter.write_text("0")

    def bump(times: int) -> None:
        for _ in range(times):
            with exclusive_lock(tmp_path / "n.lock"):
                value = int(counter.read_text())
                time.sleep(0.001)
                counter.write_text(str(value + 1))

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.read_text() == "100"


def test_atomic_files_replace_all_at_the_end_or_none(tmp_path):
    paths = {"model": tmp_path / "models" / "g.onnx", "report": tmp_path / "metrics" / "export.json"}
    for path in paths.values():
        path.parent.mkdir()
        path.write_text("old")
    with pytest.raises(RuntimeError), atomic_files(paths) as out:
        assert {key: p.name for key, p in out.items()} == {"model": "g.onnx", "report": "export.json"}
        out["model"].write_text("new")
        raise RuntimeError("registration failed")
    assert all(path.read_text() == "old" for path in paths.values())
    with atomic_files(paths) as out:
        for path in out.values():
            path.write_text("new")
        assert all(path.read_text() == "old" for path in paths.values())
    assert all(path.read_text() == "new" for path in paths.values())
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "metrics", "metrics/export.json", "models", "models/g.onnx"]


def test_full_disk_is_one_line_naming_the_file(tmp_path, full_disk):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(ResourceError) as excinfo:
        write_json(target, {"fid": 1.0})
    assert str(excinfo.value) == f"{target}: no space left on device; free some space and run again"
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_full_disk_during_a_checkpoint_save(tmp_path, full_disk, capsys):
    """Regression: torch.save said 'RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos'."""
    import torch

    from artshift import checkpoint

    assert run_main(checkpoint.save, {"kind": "generator", "w": torch.zeros(10_000)}, tmp_path / "generator.pt") == 1
    assert capsys.readouterr().err == (f"error: {tmp_path / 'generator.pt'}: no space left on device; "
                                       "free some space and run again\n")
    assert list(tmp_path.iterdir()) == []
