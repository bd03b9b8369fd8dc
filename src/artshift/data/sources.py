"""The download stage's work: get photos and paintings into ``data/raw/{photos,paintings}``.

Sources (``download.source``):
- ``embedded``: bundled photographs cut into crops + procedurally generated paintings (offline).
- ``url``: a zip or tar.gz with ``photos/`` and ``paintings/`` (optionally under one top folder),
  downloaded with resume, retries and a sha256 check before anything is extracted.
- ``local``: the same layout as a folder or archive on disk.

The output folder is built aside and swapped in whole, with a ``manifest.json`` of counts,
hashes and provenance.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath

import httpx

from artshift.config import DownloadParams
from artshift.data import embedded, paintings
from artshift.errors import DataError
from artshift.files import atomic_dir, sha256_file, write_json
from artshift.images import save_image
from artshift.log import get_logger, progress

DOMAINS = ("photos", "paintings")
CHUNK = 1 << 16
log = get_logger("download")


# --- HTTP download ------------------------------------------------------------------------

class _Incomplete(Exception):
    """The server closed before sending everything it announced."""


def _retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


def _stream_once(client: httpx.Client, url: str, part: Path) -> None:
    """One GET into ``part``, resuming from its current size with a Range request."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and offset:
            return  # the partial file is already complete
        if response.status_code not in (200, 206):
            raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
        if response.status_code == 200:
            offset = 0  # the server ignored Range: start over
        length = response.headers.get("content-length")
        total = offset + int(length) if length and length.isdigit() else None
        with open(part, "ab" if offset else "wb") as handle:
            bar = progress(response.iter_bytes(CHUNK), desc=f"download {part.stem}")
            for chunk in bar:
                handle.write(chunk)
        if total is not None and part.stat().st_size < total:
            raise _Incomplete(f"got {part.stat().st_size} of {total} bytes")


def download_file(url: str, dest: Path, sha256: str = "", retries: int = 4, timeout_s: float = 30.0,
                  backoff_s: float = 1.0) -> Path:
    """Download ``url`` to ``dest``: streamed to ``dest.part``, resumed and retried, then verified.

    A complete ``dest`` whose hash matches is reused. The sha256 (when given) is checked before
    ``dest`` appears; on mismatch the download is deleted and :class:`DataError` raised.
    """
    dest = Path(dest)
    if dest.is_file() and (not sha256 or sha256_file(dest) == sha256.lower()):
        log.info("using cached %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        for attempt in range(retries + 1):
            try:
                _stream_once(client, url, part)
                break
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if not _retryable(status) or attempt == retries:
                    raise DataError(f"download {url}: HTTP {status}") from None
                reason = f"HTTP {status}"
            except (httpx.TransportError, _Incomplete) as exc:
                if attempt == retries:
                    raise DataError(f"download {url}: {exc or type(exc).__name__} after {retries + 1} attempts") from None
                reason = str(exc) or type(exc).__name__
            delay = backoff_s * 2 ** attempt
            log.warning("download attempt %d failed (%s); retrying in %.1f s", attempt + 1, reason, delay)
            time.sleep(delay)
    _verify(part, sha256, url)
    part.replace(dest)
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def _verify(path: Path, sha256: str, label: str) -> None:
    if not sha256:
        return
    actual = sha256_file(path)
    if actual != sha256.lower():
        path.unlink(missing_ok=True)
        raise DataError(f"{label}: sha256 mismatch: expected {sha256.lower()}, got {actual}; nothing extracted")


# --- Safe extraction ------------------------------------------------------------------------

def _safe_target(root: Path, name: str) -> Path:
    """Where archive member ``name`` goes under ``root``; absolute or escaping names are refused."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (pure.parts and pure.parts[0].endswith(":")):
        raise DataError(f"unsafe archive member {name!r}: absolute path")
    if ".." in pure.parts:
        raise DataError(f"unsafe archive member {name!r}: '..' in path")
    return root.joinpath(*pure.parts)


def _check_link(root: Path, name: str, link_target: str) -> None:
    """Refuse a link whose target resolves outside ``root``; in-tree links are simply not extracted."""
    base = _safe_target(root, name).parent
    resolved = (Path(link_target) if link_target.startswith("/") else base / link_target).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DataError(f"unsafe archive member {name!r}: link to {link_target!r} leaves the target folder")


def _extract_zip(archive: Path, root: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = _safe_target(root, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(root, info.filename, zf.read(info).decode("utf-8", "replace"))
            elif not info.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def _extract_tar(archive: Path, root: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            target = _safe_target(root, member.name)
            if member.issym() or member.islnk():
                _check_link(root, member.name, member.linkname if member.issym() else "/" + member.linkname)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            elif not member.isdir():
                raise DataError(f"unsafe archive member {member.name!r}: device or special file")


def extract_archive(archive: Path, root: Path) -> None:
    """Extract a zip or tar(.gz) into ``root``, refusing members that would escape it."""
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, root)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, root)
        else:
            raise DataError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: damaged archive ({exc})") from None


def _layout_root(folder: Path) -> Path:
    """The folder holding ``photos/`` and ``paintings/``: ``folder`` itself or its single subfolder."""
    if all((folder / d).is_dir() for d in DOMAINS):
        return folder
    children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and all((children[0] / d).is_dir() for d in DOMAINS):
        return children[0]
    missing = [d for d in DOMAINS if not (folder / d).is_dir()]
    raise DataError(f"{folder.name}: expected photos/ and paintings/ folders (optionally under one top "
                    f"folder); missing {', '.join(missing)}")


def _copy_domains(root: Path, out: Path) -> None:
    for domain in DOMAINS:
        for path in sorted((root / domain).rglob("*")):
            if path.is_file() and not path.is_symlink():
                target = out / domain / path.relative_to(root / domain)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)


def _from_archive(archive: Path, out: Path) -> None:
    staging = out / ".extract"
    staging.mkdir()
    extract_archive(archive, staging)
    _copy_domains(_layout_root(staging), out)
    shutil.rmtree(staging)


# --- Sources --------------------------------------------------------------------------------

def _embedded(params: DownloadParams, seed: int, out: Path) -> dict:
    photos = embedded.photo_crops(params.crops_per_photo, seed)
    art = paintings.generate(params.n_paintings, params.painting_size, seed)
    for domain, items in (("photos", photos), ("paintings", art)):
        for name, image in progress(items, desc=f"embedded {domain}"):
            save_image(image, out / domain / f"{name}.png")
    log.info("cut %d crops from %d bundled photographs; generated %d synthetic paintings",
             len(photos), len(embedded.BUNDLED_PHOTOS), len(art))
    return {"paintings_synthetic": True, "painting_styles": list(paintings.STYLES),
            "photo_sources": embedded.photo_sources(),
            "note": "paintings are procedurally generated (synthetic), not real artworks"}


def _url(params: DownloadParams, out: Path, downloads_dir: Path) -> dict:
    name = PurePosixPath(httpx.URL(params.url).path).name or "dataset.archive"
    archive = download_file(params.url, downloads_dir / name, params.sha256, params.retries, params.timeout_s)
    _from_archive(archive, out)
    return {"url": params.url, "archive_sha256": sha256_file(archive), "paintings_synthetic": False}


def _local(params: DownloadParams, out: Path) -> dict:
    path = Path(params.path)
    if not path.exists():
        raise DataError(f"download.path: {path} does not exist")
    if path.is_dir():
        _copy_domains(_layout_root(path), out)
        return {"path": str(path), "paintings_synthetic": False}
    _verify(path, params.sha256, str(path))
    _from_archive(path, out)
    return {"path": str(path), "archive_sha256": sha256_file(path), "paintings_synthetic": False}


def dataset_hash(folder: Path) -> str:
    """sha256 over every file's relative path and content hash: one id for the whole data set."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def fetch_dataset(params: DownloadParams, seed: int, out_dir: Path, downloads_dir: Path | None = None) -> dict:
    """Build ``out_dir/{photos,paintings}`` and ``manifest.json`` from the configured source.

    Archives are cached in ``downloads_dir`` (default: ``data/downloads`` beside ``out_dir``).
    Returns the manifest (counts, hashes, provenance), which the stage logs to MLflow.
    """
    out_dir = Path(out_dir)
    downloads_dir = Path(downloads_dir or out_dir.parent / "downloads")
    log.info("source: %s", params.source)
    with atomic_dir(out_dir) as tmp:
        for domain in DOMAINS:
            (tmp / domain).mkdir()
        if params.source == "embedded":
            provenance = _embedded(params, seed, tmp)
        elif params.source == "url":
            provenance = _url(params, tmp, downloads_dir)
        else:
            provenance = _local(params, tmp)
        counts = {d: sum(1 for p in (tmp / d).rglob("*") if p.is_file()) for d in DOMAINS}
        if not all(counts.values()):
            raise DataError(f"download: no files in {', '.join(d + '/' for d in DOMAINS if not counts[d])}")
        manifest = {"source": params.source, "counts": counts, "dataset_sha256": dataset_hash(tmp), **provenance}
        write_json(tmp / "manifest.json", manifest)
    log.info("wrote %d photos and %d paintings to %s", counts["photos"], counts["paintings"], out_dir)
    return manifest
