"""Safe extraction of a zip or tar(.gz/.bz2/.xz) archive into one folder.

Archives come from the network or from users, so they are not trusted: a member with an
absolute path or ``..``, a link that leaves the tree, or a device file could write outside the
target folder or plant something unexpected. :func:`extract_archive` refuses those with a
:class:`DataError` naming the member, writes regular files only, and turns links that stay
inside the archive into copies. Used by the ``url`` and ``local`` data sources.

A small archive can also expand to fill the disk (a zip or gzip bomb), so what it writes is
bounded by :class:`ExtractLimits`: per member, in total, and as a ratio to the archive's size.
Declared sizes are checked before a member is written and the bytes are counted as they are
copied, so a lying header gains nothing.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from artshift.errors import DataError, one_line
from artshift.files import disk_errors
from artshift.log import get_logger

log = get_logger("download")
CHUNK = 1 << 20
MIB = 1 << 20
RATIO_FLOOR = 64 * MIB  # below this much extracted data the compression ratio is not checked


@dataclass(frozen=True)
class ExtractLimits:
    """What one archive may write (the params ``download.max_member_mb``, ``download.max_extract_mb``
    and ``download.max_ratio`` set them). ``max_ratio`` bounds extracted bytes / archive bytes once
    more than :data:`RATIO_FLOOR` is extracted: photos and paintings are compressed already (ratio
    near 1), so a much larger ratio means a bomb, not images."""

    max_member_bytes: int = 512 * MIB
    max_total_bytes: int = 10240 * MIB
    max_ratio: float = 100.0


class _Budget:
    """The bytes one extraction has written, checked against its :class:`ExtractLimits`."""

    def __init__(self, limits: ExtractLimits, archive: Path):
        self.limits, self.archive = limits, archive
        self.max_by_ratio = max(RATIO_FLOOR, limits.max_ratio * archive.stat().st_size)
        self.total = self.member = 0

    def start(self, name: str, declared: int) -> None:
        """Begin member ``name``; refuse it at once if its declared size breaks a limit."""
        self.member = 0
        self._check(name, declared, self.total + declared)

    def take(self, name: str, size: int) -> None:
        """Count ``size`` more bytes of member ``name``; raise before a limit is passed."""
        self.member += size
        self.total += size
        self._check(name, self.member, self.total)

    def _check(self, name: str, member: int, total: int) -> None:
        limits = self.limits
        if member > limits.max_member_bytes:
            self._refuse(f"member {name!r} extracts to more than {_mib(limits.max_member_bytes)} "
                         "(download.max_member_mb)")
        if total > limits.max_total_bytes:
            self._refuse(f"it extracts to more than {_mib(limits.max_total_bytes)} in all (download.max_extract_mb)")
        if total > self.max_by_ratio:
            self._refuse(f"it extracts to more than {limits.max_ratio:g} times its own size of "
                         f"{_mib(self.archive.stat().st_size)} (download.max_ratio)")

    def _refuse(self, reason: str) -> None:
        raise DataError(f"{self.archive.name}: refusing to extract, {reason}; a zip bomb? "
                        "Raise the limit if the archive is trusted")


def _mib(size: float) -> str:
    """A byte count in MiB for messages."""
    return f"{size / MIB:.1f} MiB"


def _is_absolute(name: str) -> bool:
    """True for POSIX, Windows-rooted and drive-letter paths (``/x``, ``\\x``, ``C:x``)."""
    first = PurePosixPath(name.replace("\\", "/")).parts[:1]
    return name.startswith(("/", "\\")) or bool(first and first[0].endswith(":"))


def _member_parts(name: str) -> tuple[str, ...]:
    """Path components of archive member ``name``; absolute or ``..`` names raise :class:`DataError`."""
    if _is_absolute(name):
        raise DataError(f"unsafe archive member {name!r}: absolute path")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise DataError(f"unsafe archive member {name!r}: '..' in path")
    return parts


def _check_link(name: str, target: str, hard: bool) -> None:
    """Refuse a link whose target is absolute or resolves outside the archive's tree.

    A symlink's target is relative to the link's folder; a hard link's to the archive root.
    """
    base = "" if hard else posixpath.dirname(name.replace("\\", "/"))
    resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    if _is_absolute(target) or resolved == ".." or resolved.startswith("../"):
        raise DataError(f"unsafe archive member {name!r}: link to {target!r} leaves the target folder")


def _write_member(source: IO[bytes], target: Path, name: str, budget: _Budget) -> None:
    """Copy one member's bytes to ``target``, creating its folders, counting them in ``budget``."""
    with source:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            while chunk := source.read(CHUNK):
                budget.take(name, len(chunk))
                handle.write(chunk)


def _extract_zip(archive: Path, root: Path, budget: _Budget) -> None:
    """Extract regular files; refuse escaping links and special files; skip in-tree symlinks."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = root.joinpath(*_member_parts(info.filename))
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(info.filename, zf.read(info).decode("utf-8", "replace"), hard=False)
                log.warning("skipping symbolic link %s in %s", info.filename, archive.name)
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DataError(f"unsafe archive member {info.filename!r}: device or special file")
            elif not info.is_dir():
                budget.start(info.filename, info.file_size)
                _write_member(zf.open(info), target, info.filename, budget)


def _open_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes] | None:
    """A member's bytes; a link gives its target's bytes, looked up inside the archive only."""
    try:
        return tf.extractfile(member)
    except KeyError:
        raise DataError(f"archive member {member.name!r}: link target {member.linkname!r} "
                        "is not in the archive") from None


def _extract_tar(archive: Path, root: Path, budget: _Budget) -> None:
    """Extract files, and links inside the tree as copies; refuse escaping links and devices.

    Members are read one by one, so an oversized header stops the extraction before the rest of
    a compressed stream is decompressed."""
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            target = root.joinpath(*_member_parts(member.name))
            if member.isdir():
                continue
            if member.issym() or member.islnk():
                _check_link(member.name, member.linkname, hard=member.islnk())
            elif not member.isfile():
                raise DataError(f"unsafe archive member {member.name!r}: device or special file")
            budget.start(member.name, member.size)  # a link's own size is 0; its copy is counted as written
            source = _open_tar_member(tf, member)
            if source is None:
                log.warning("skipping link to a folder %s in %s", member.name, archive.name)
                continue
            _write_member(source, target, member.name, budget)


# Leading bytes of the formats extract_archive reads: a file that starts like one of them but does
# not open as one was cut short (an interrupted copy or download) or damaged, not of another kind.
SIGNATURES = {b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2",
              b"\xfd7zXZ\x00": "xz"}
TAR_MAGIC_AT, TAR_MAGIC = 257, b"ustar"
# What the zip, tar and compression modules raise on a stream that ends early or has bad bytes.
DAMAGE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error)


def _looks_like(archive: Path) -> str | None:
    """The archive format ``archive``'s first bytes announce (``zip``, ``gzip``, ``tar``...), else None."""
    with open(archive, "rb") as handle:
        head = handle.read(TAR_MAGIC_AT + len(TAR_MAGIC))
    if head[TAR_MAGIC_AT:] == TAR_MAGIC:
        return "tar"
    return next((kind for magic, kind in SIGNATURES.items() if head.startswith(magic)), None)


def _damaged(archive: Path, detail: str) -> DataError:
    """The one-line error for an archive cut short or corrupted, with what the reader found."""
    return DataError(f"{archive.name}: truncated or damaged archive ({detail}); download or copy it again")


def extract_archive(archive: Path, root: Path, limits: ExtractLimits = ExtractLimits()) -> None:
    """Extract a zip or tar(.gz/.bz2/.xz) into ``root``, refusing members that would escape it.

    Nothing outside ``root`` is ever written, and no link is created: absolute paths, ``..``,
    links leaving the tree and device files raise :class:`DataError` naming the member. An
    archive that would write more than ``limits`` allow raises :class:`DataError` as soon as
    that is known, and one cut short or corrupted says so (not "not an archive"); what was
    written so far stays in ``root`` for the caller to discard.
    """
    log.info("extracting %s", archive.name)
    budget = _Budget(limits, archive)
    try:
        with disk_errors(f"extracting {archive.name}"):
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, root, budget)
            elif tarfile.is_tarfile(archive):
                _extract_tar(archive, root, budget)
            elif kind := _looks_like(archive):
                raise _damaged(archive, f"it starts as a {kind} file but "
                               + ("its central directory, at the end, is missing" if kind == "zip"
                                  else "ends before its first member"))
            else:
                raise DataError(f"{archive.name}: not a zip or tar archive")
    except DAMAGE_ERRORS as exc:
        raise _damaged(archive, one_line(exc)) from None
    except (OSError, RuntimeError, NotImplementedError) as exc:
        raise DataError(f"{archive.name}: cannot extract ({one_line(exc)})") from None
