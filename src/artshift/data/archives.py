"""Safe extraction of a zip or tar(.gz/.bz2/.xz) archive into one folder.

Archives come from the network or from users, so they are not trusted: a member with an
absolute path or ``..``, a link that leaves the tree, or a device file could write outside the
target folder or plant something unexpected. :func:`extract_archive` refuses those with a
:class:`DataError` naming the member, writes regular files only, and turns links that stay
inside the archive into copies. Used by the ``url`` and ``local`` data sources.
"""

from __future__ import annotations

import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from artshift.errors import DataError, one_line
from artshift.log import get_logger

log = get_logger("download")


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


def _write_member(source: IO[bytes], target: Path) -> None:
    """Copy one member's bytes to ``target``, creating its folders."""
    with source:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            shutil.copyfileobj(source, handle)


def _extract_zip(archive: Path, root: Path) -> None:
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
                _write_member(zf.open(info), target)


def _open_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes] | None:
    """A member's bytes; a link gives its target's bytes, looked up inside the archive only."""
    try:
        return tf.extractfile(member)
    except KeyError:
        raise DataError(f"archive member {member.name!r}: link target {member.linkname!r} "
                        "is not in the archive") from None


def _extract_tar(archive: Path, root: Path) -> None:
    """Extract files, and links inside the tree as copies; refuse escaping links and devices."""
    with tarfile.open(archive, "r:*") as tf:
        for member in tf.getmembers():
            target = root.joinpath(*_member_parts(member.name))
            if member.isdir():
                continue
            if member.issym() or member.islnk():
                _check_link(member.name, member.linkname, hard=member.islnk())
            elif not member.isfile():
                raise DataError(f"unsafe archive member {member.name!r}: device or special file")
            source = _open_tar_member(tf, member)
            if source is None:
                log.warning("skipping link to a folder %s in %s", member.name, archive.name)
                continue
            _write_member(source, target)


def extract_archive(archive: Path, root: Path) -> None:
    """Extract a zip or tar(.gz/.bz2/.xz) into ``root``, refusing members that would escape it.

    Nothing outside ``root`` is ever written, and no link is created: absolute paths, ``..``,
    links leaving the tree and device files raise :class:`DataError` naming the member.
    """
    log.info("extracting %s", archive.name)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, root)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, root)
        else:
            raise DataError(f"{archive.name}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError, RuntimeError,
            NotImplementedError) as exc:
        raise DataError(f"{archive.name}: cannot extract ({one_line(exc)})") from None
