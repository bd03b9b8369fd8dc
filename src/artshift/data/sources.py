"""The download stage's work: get photos and paintings into ``data/raw/{photos,paintings}``.

Sources (``download.source``):
- ``embedded``: bundled photographs cut into crops + procedurally generated paintings (offline).
- ``url``: a zip or tar(.gz) with ``photos/`` and ``paintings/`` (optionally under one top folder),
  downloaded with resume, retries and a sha256 check before anything is extracted.
- ``local``: the same layout as a folder or archive on disk.

The output folder is built aside and swapped in whole, with a ``manifest.json`` of counts,
hashes and provenance.
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import IO

import httpx
from PIL import Image

from artshift.config import DownloadParams
from artshift.data import embedded, paintings
from artshift.errors import DataError
from artshift.files import atomic_dir, save_with, sha256_file, write_json
from artshift.log import get_logger, progress

DOMAINS = ("photos", "paintings")
CHUNK = 1 << 16
BACKOFF_S = 1.0  # delay before the first retry; it doubles with every further attempt
RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
SUMMARY_KEYS = ("source", "counts", "dataset_sha256", "paintings_synthetic", "archive_sha256")
log = get_logger("download")


def _one_line(exc: BaseException) -> str:
    """An exception's message squeezed onto one line (or its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


# --- HTTP download ------------------------------------------------------------------------

class _Retry(Exception):
    """An attempt failed in a way a later attempt may fix; the message says how."""


def _check_status(response: httpx.Response, url: str, offset: int, part: Path) -> None:
    """Accept 200/206; retry on 5xx, 408, 425, 429 and a refused resume; fail at once otherwise."""
    status = response.status_code
    if status in (200, 206):
        return
    if status == 416 and offset:
        part.unlink()
        raise _Retry("server refused to resume the partial file (HTTP 416); starting over")
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    if status in RETRY_STATUSES or status >= 500:
        raise _Retry(reason)
    raise DataError(f"download {url}: {reason}")


def _body_start(response: httpx.Response, offset: int, part: Path) -> int:
    """Where the body goes in the file: 0 for a 200 (restart), ``offset`` for a matching 206.

    A 206 for some other range would corrupt the file, so the partial file is dropped.
    """
    if response.status_code == 200:
        return 0
    content_range = response.headers.get("content-range", "")
    start = content_range.removeprefix("bytes ").partition("-")[0]
    if not content_range.startswith("bytes ") or not start.isdigit() or int(start) != offset:
        part.unlink()
        raise _Retry(f"asked for bytes from {offset}, got range {content_range!r}; starting over")
    return offset


def _stream_once(client: httpx.Client, url: str, part: Path) -> None:
    """One GET into ``part``, resuming from its current size with ``Range: bytes=N-``.

    Raw bytes are written (no transfer decoding), so sizes and ranges match the file on the
    server. A body shorter than announced raises :class:`_Retry`; the whole chunks that arrived
    stay in ``part`` for the next attempt to resume from.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    with client.stream("GET", url, headers=headers) as response:
        _check_status(response, url, offset, part)
        start = _body_start(response, offset, part)
        length = response.headers.get("content-length", "")
        expected = start + int(length) if length.isdigit() else None
        chunks = math.ceil(int(length) / CHUNK) if length.isdigit() else None
        with open(part, "ab" if start else "wb") as handle:
            for chunk in progress(response.iter_raw(CHUNK), desc=f"download {part.name}", total=chunks):
                handle.write(chunk)
    size = part.stat().st_size
    if expected is not None and size != expected:
        raise _Retry(f"got {size} of {expected} bytes")


def _fetch_with_retries(client: httpx.Client, url: str, part: Path, retries: int, backoff_s: float) -> None:
    """Call :func:`_stream_once` up to ``retries + 1`` times, with exponential backoff between."""
    for attempt in range(1, retries + 2):
        try:
            _stream_once(client, url, part)
            return
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DataError(f"download {url}: {_one_line(exc)}") from None
        except (httpx.TransportError, _Retry) as exc:
            reason = _one_line(exc)
        if attempt > retries:
            raise DataError(f"download {url}: {reason} (gave up after {attempt} attempts)")
        delay = backoff_s * 2 ** (attempt - 1)
        log.warning("attempt %d of %d failed (%s); retrying in %.1f s", attempt, retries + 1, reason, delay)
        time.sleep(delay)


def _check_sha256(path: Path, expected: str, label: str) -> str:
    """Hash ``path``; raise :class:`DataError` if ``expected`` is given and differs. Returns the hash."""
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        raise DataError(f"{label}: sha256 mismatch: expected {expected.lower()}, got {actual}")
    if not expected:
        log.warning("%s: no sha256 to check against, so not verified (its sha256 is %s)", label, actual)
    return actual


def download_file(url: str, dest: Path, sha256: str = "", retries: int = 4, timeout_s: float = 30.0,
                  backoff_s: float | None = None) -> Path:
    """Download ``url`` to ``dest``: streamed to ``dest.part``, resumed, retried, then verified.

    Resuming and retrying make large downloads survive flaky networks; the sha256 (when given)
    is checked before ``dest`` appears, and on a mismatch the download is deleted and
    :class:`DataError` raised. A ``dest`` already present (and matching ``sha256``) is reused.
    ``backoff_s`` is the first retry delay (default :data:`BACKOFF_S`), doubled each retry.
    """
    dest = Path(dest)
    if dest.is_file() and (not sha256 or sha256_file(dest) == sha256.lower()):
        log.info("using cached %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s", url)
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        _fetch_with_retries(client, url, part, retries, BACKOFF_S if backoff_s is None else backoff_s)
    try:
        _check_sha256(part, sha256, f"download {url}")
    except DataError:
        part.unlink()
        raise
    part.replace(dest)
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


# --- Safe extraction ------------------------------------------------------------------------

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
        raise DataError(f"{archive.name}: cannot extract ({_one_line(exc)})") from None


# --- Layout and copying ---------------------------------------------------------------------

def _hidden(name: str) -> bool:
    """Hidden files and macOS archive debris (``.DS_Store``, ``._x.png``, ``__MACOSX``)."""
    return name.startswith((".", "__MACOSX"))


def _layout_root(folder: Path, label: str) -> Path:
    """The folder holding ``photos/`` and ``paintings/``: ``folder`` itself or its one subfolder."""
    root = folder
    if not any((folder / domain).is_dir() for domain in DOMAINS):
        children = [child for child in folder.iterdir() if child.is_dir() and not _hidden(child.name)]
        if len(children) == 1:
            root = children[0]
    missing = [f"{domain}/" for domain in DOMAINS if not (root / domain).is_dir()]
    if missing:
        raise DataError(f"{label}: missing {' and '.join(missing)} (expected photos/ and paintings/ "
                        "folders, optionally under one top folder)")
    return root


def _collect_images(root: Path, out: Path, transfer: Callable[[Path, Path], object]) -> int:
    """Move or copy (``transfer``) the image files of each domain folder into ``out``.

    Image files are those whose suffix Pillow knows; hidden files and anything else are left
    out, and their number is returned for the manifest.
    """
    suffixes = set(Image.registered_extensions())
    skipped = 0
    for domain in DOMAINS:
        for path in sorted(p for p in (root / domain).rglob("*") if p.is_file()):
            relative = path.relative_to(root / domain)
            if path.suffix.lower() not in suffixes or any(_hidden(part) for part in relative.parts):
                log.debug("skipping non-image %s", path)
                skipped += 1
                continue
            target = out / domain / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            transfer(path, target)
    if skipped:
        log.info("left out %d non-image files", skipped)
    return skipped


def _unpack(archive: Path, out: Path, label: str) -> int:
    """Extract ``archive`` beside the output and move its images into ``out``; returns skipped count."""
    staging = out / ".extract"
    extract_archive(archive, staging)
    skipped = _collect_images(_layout_root(staging, label), out, os.replace)
    shutil.rmtree(staging)
    return skipped


# --- Sources --------------------------------------------------------------------------------

def _save_pngs(items: Iterable[tuple[str, Image.Image]], folder: Path, desc: str, total: int) -> None:
    """Write each named image as ``folder/<name>.png`` (atomically, via files.save_with)."""
    for name, image in progress(items, desc=desc, total=total):
        save_with(folder / f"{name}.png", lambda tmp, image=image: image.save(tmp, format="PNG"))


def _embedded(params: DownloadParams, seed: int, out: Path) -> dict:
    """Bundled photographs cut into seeded crops, plus seeded synthetic paintings."""
    n_photos = len(embedded.BUNDLED_PHOTOS)
    n_crops = params.crops_per_photo * n_photos
    _save_pngs(embedded.photo_crops(params.crops_per_photo, seed), out / "photos", "photo crops", n_crops)
    log.info("cut %d crops from %d bundled photographs", n_crops, n_photos)
    art = paintings.generate(params.n_paintings, params.painting_size, seed)
    _save_pngs(art, out / "paintings", "paintings", params.n_paintings)
    log.info("generated %d synthetic paintings in styles %s", params.n_paintings, ", ".join(paintings.STYLES))
    return {"seed": seed, "paintings_synthetic": True, "painting_styles": list(paintings.STYLES),
            "photo_sources": embedded.photo_sources(),
            "note": "paintings are procedurally generated (synthetic), not real artworks; "
                    "photos are seeded crops of sample photographs bundled with Python packages"}


def _cache_path(url: str, downloads_dir: Path) -> Path:
    """Cache file for ``url``: its file name behind a hash of the url, so urls never collide."""
    try:
        name = PurePosixPath(httpx.URL(url).path).name or "dataset"
    except httpx.InvalidURL as exc:
        raise DataError(f"download.url: {_one_line(exc)}") from None
    return downloads_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def _url(params: DownloadParams, out: Path, downloads_dir: Path) -> dict:
    """Download (or reuse the cached) archive, verify it, then extract its images."""
    archive = download_file(params.url, _cache_path(params.url, downloads_dir), params.sha256,
                            params.retries, params.timeout_s)
    skipped = _unpack(archive, out, params.url)
    return {"url": params.url, "archive_sha256": sha256_file(archive), "paintings_synthetic": False,
            "photo_sources": [params.url], "skipped_files": skipped}


def _local(params: DownloadParams, out: Path) -> dict:
    """Copy images from a folder, or verify and extract an archive, at ``params.path``."""
    path = Path(params.path)
    if not path.exists():
        raise DataError(f"download.path: {path} does not exist")
    provenance = {"path": str(path), "paintings_synthetic": False, "photo_sources": [str(path)]}
    if path.is_dir():
        if params.sha256:
            log.warning("download.sha256 is ignored: %s is a folder, not an archive", path)
        return {**provenance, "skipped_files": _collect_images(_layout_root(path, str(path)), out, shutil.copyfile)}
    digest = _check_sha256(path, params.sha256, str(path))
    return {**provenance, "archive_sha256": digest, "skipped_files": _unpack(path, out, str(path))}


def dataset_hash(folder: Path) -> str:
    """sha256 over every file's relative path and content hash: one id for the whole data set.

    ``manifest.json`` is left out, so the id depends on the data only.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != "manifest.json"):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _count(folder: Path) -> dict[str, int]:
    """Files per domain; an empty domain raises :class:`DataError`."""
    counts = {domain: sum(1 for p in (folder / domain).rglob("*") if p.is_file()) for domain in DOMAINS}
    empty = [f"{domain}/" for domain, n in counts.items() if not n]
    if empty:
        raise DataError(f"download: no image files in {' and '.join(empty)}")
    return counts


def _build(params: DownloadParams, seed: int, out: Path, downloads_dir: Path) -> dict:
    """Fill ``out/{photos,paintings}`` from the configured source; returns its provenance."""
    if params.source == "embedded":
        return _embedded(params, seed, out)
    if params.source == "url":
        return _url(params, out, downloads_dir)
    return _local(params, out)


def fetch_dataset(params: DownloadParams, seed: int, out_dir: Path, downloads_dir: Path | None = None) -> dict:
    """Build ``out_dir/{photos,paintings}`` and ``out_dir/manifest.json`` from the configured source.

    The folder is built aside and swapped in whole, so a failure leaves the previous data set.
    Archives are cached in ``downloads_dir`` (default: ``downloads`` beside ``out_dir``), outside
    the output. The manifest records source, counts, a data set sha256 and provenance; the
    returned summary (source, counts, hashes, synthetic flag) is what the stage logs to MLflow.
    """
    out_dir = Path(out_dir)
    downloads_dir = Path(downloads_dir) if downloads_dir else out_dir.parent / "downloads"
    log.info("source %s -> %s", params.source, out_dir)
    with atomic_dir(out_dir) as tmp:
        for domain in DOMAINS:
            (tmp / domain).mkdir()
        provenance = _build(params, seed, tmp, downloads_dir)
        counts = _count(tmp)
        manifest = {"source": params.source, "counts": counts, "dataset_sha256": dataset_hash(tmp), **provenance}
        write_json(tmp / "manifest.json", manifest)
    log.info("wrote %d photos and %d paintings to %s (sha256 %s)", counts["photos"], counts["paintings"],
             out_dir, manifest["dataset_sha256"][:12])
    return {key: manifest[key] for key in SUMMARY_KEYS if key in manifest}
