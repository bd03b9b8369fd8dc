"""Atomic file writes: every file a stage writes goes through here (temp file + ``os.replace``).

A crash half-way leaves either the old file or the new one, never a truncated mix; a full disk
is one :class:`ResourceError` line naming the file being written. Files and
folders get the permissions the umask gives (not ``mkstemp``'s 0600 / ``mkdtemp``'s 0700), and a
folder swap holds a lock file beside the folder, so two processes building the same folder at
once take turns instead of deleting each other's work.

A writer killed outright (SIGKILL, OOM, power cut) cannot remove its temporary file or folder,
so every temporary name carries its writer's process id (``.<name>.<pid>.<random>.tmp``, and
``.old`` for a folder being swapped out), and the next write into the same folder removes those
whose process is gone (:func:`remove_stale`): a killed stage leaves nothing once it has run again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TypeVar

from artshift.errors import ResourceError
from artshift.log import get_logger

log = get_logger("files")
K = TypeVar("K")
# A temporary name made by this module: ``.<name>.<writer's pid>.<random>.tmp`` (or ``.old``).
STALE_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.(?:tmp|old)$")
_swept: set[Path] = set()  # folders this process has already cleaned (once each: folders can be large)


def _temp_prefix(name: str) -> str:
    """The start of a temporary name for ``name``, with this process's id (see :data:`STALE_NAME`)."""
    return f".{name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(folder: str | Path) -> None:
    """Delete the temporary files and folders in ``folder`` that writers killed before they could
    clean up left behind (their process is gone). Runs once per folder and process, before its
    first write there; a live writer's temporary names are never touched."""
    folder = Path(folder).resolve()
    if folder in _swept:
        return
    _swept.add(folder)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = STALE_NAME.match(entry.name)
            if match and not _alive(int(match["pid"])):
                log.info("removing %s, left by a process that was killed while writing", entry.path)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def disk_errors(path: str | Path) -> Iterator[None]:
    """Turn a full disk (or quota) while writing ``path`` into one :class:`ResourceError` naming it."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise ResourceError(f"{path}: no space left on device; free some space and run again") from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    Works for writers that want a file name (``PIL.Image.save``, ONNX export; ``torch.save``
    through :func:`artshift.checkpoint.save`, which gives it an open file so that a full disk
    raises ``ENOSPC`` rather than torch's ``unexpected pos``). On error the temporary file is
    removed and ``path`` is left untouched; a full disk raises :class:`ResourceError`.
    """
    path = Path(path)
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


@contextlib.contextmanager
def _staging_dir(parent: Path) -> Iterator[Path]:
    """A temporary folder in ``parent``, removed with whatever is left in it."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    folder = Path(tempfile.mkdtemp(prefix=_temp_prefix("staging"), suffix=".tmp", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_files(paths: Mapping[K, str | Path]) -> Iterator[dict[K, Path]]:
    """Yield stand-ins for a stage's several output files; they replace ``paths`` when the block succeeds.

    Each stand-in has its file's name, in a temporary folder beside it, so whatever names a file
    after its path (MLflow artifacts) sees the real name. A failure anywhere in the block leaves
    every previous file; on success each goes in with one ``os.replace``, all at the very end.
    """
    with contextlib.ExitStack() as stack:
        folders: dict[Path, Path] = {}
        staged: dict[K, Path] = {}
        for key, path in paths.items():
            parent = Path(path).parent
            if parent not in folders:
                folders[parent] = stack.enter_context(_staging_dir(parent))
            staged[key] = folders[parent] / Path(path).name
        yield staged
        for key, path in paths.items():
            os.replace(staged[key], path)


def _lock_open(path: Path) -> IO[str]:
    """Open ``path`` (created if missing) holding an exclusive ``flock`` on it; waits for a holder.

    A holder deletes the file before it lets go, so after waiting the lock may be on a deleted
    file: then the path is opened again, until the lock is held on the file the path names.
    """
    waited = False
    while True:
        handle = open(path, "a")  # noqa: SIM115 - returned open, closed by exclusive_lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                log.info("waiting for another process holding %s", path)
                waited = True
            fcntl.flock(handle, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        handle.close()


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` for the block; other processes wait their turn.

    The file exists only while the lock is held (nothing is left behind), and the lock goes with
    the process if it dies, so a crash never leaves a stale lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _lock_open(path)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # before letting go: a waiter then sees the file gone and reopens
        handle.close()  # releases the flock


def _swap_dir(new: Path, path: Path) -> None:
    """Put folder ``new`` at ``path``; the old folder is moved aside first and deleted last."""
    old = path.with_name(f"{_temp_prefix(path.name)}{uuid.uuid4().hex[:8]}.old")
    had_old = path.exists()
    if had_old:
        os.replace(path, old)
    os.replace(new, path)
    if had_old:
        shutil.rmtree(old)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces directory ``path`` on success.

    Used by stages whose output is a whole folder (``data/raw``, ``data/processed``):
    readers never see a half-filled folder. The whole block holds the lock file ``.<name>.lock``
    beside ``path``: a second process building the same folder waits for the first to finish.
    """
    path = Path(path)
    with exclusive_lock(path.with_name(f".{path.name}.lock")):
        remove_stale(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder normal permissions
            _swap_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large archives are fine."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
