"""The download stage's work: get photos and paintings into ``data/raw/{photos,paintings}``.

Sources (``download.source``, one entry of :data:`SOURCES` each):
- ``embedded``: bundled photographs cut into crops + procedurally generated paintings (offline).
- ``url``: a zip or tar(.gz) with ``photos/`` and ``paintings/`` (optionally under one top folder),
  downloaded with resume, retries and a sha256 check (:mod:`artshift.data.download`) before
  anything is extracted (safely: :mod:`artshift.data.archives`).
- ``local``: the same layout as a folder or archive on disk.

This module finds the ``photos/`` and ``paintings/`` folders in what a source delivers, keeps
the image files, and writes them in the raw layout of :mod:`artshift.data.layout`. The output
folder is built aside and swapped in whole, with a ``manifest.json`` of counts, hashes and
provenance.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import httpx
from PIL import Image

from artshift.config import DownloadParams
from artshift.data import embedded, paintings
from artshift.data.archives import MIB, ExtractLimits, extract_archive
from artshift.data.download import check_sha256, download_file
from artshift.data.layout import DOMAINS, RAW_MANIFEST, raw_folder
from artshift.errors import DataError, one_line
from artshift.files import atomic_dir, save_with, sha256_file, write_json
from artshift.log import get_logger, progress

SUMMARY_KEYS = ("source", "counts", "dataset_sha256", "paintings_synthetic", "archive_sha256")
log = get_logger("download")


# --- Layout and copying ---------------------------------------------------------------------

def _hidden(name: str) -> bool:
    """Hidden files and macOS archive debris (``.DS_Store``, ``._x.png``, ``__MACOSX``)."""
    return name.startswith((".", "__MACOSX"))


def _layout_root(folder: Path, label: str) -> Path:
    """The folder holding ``photos/`` and ``paintings/``: ``folder`` itself or its one subfolder."""
    root = folder
    if not any(raw_folder(folder, domain).is_dir() for domain in DOMAINS):
        children = [child for child in folder.iterdir() if child.is_dir() and not _hidden(child.name)]
        if len(children) == 1:
            root = children[0]
    missing = [f"{domain}/" for domain in DOMAINS if not raw_folder(root, domain).is_dir()]
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
        source = raw_folder(root, domain)
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = path.relative_to(source)
            if path.suffix.lower() not in suffixes or any(_hidden(part) for part in relative.parts):
                log.debug("skipping non-image %s", path)
                skipped += 1
                continue
            target = raw_folder(out, domain) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            transfer(path, target)
    if skipped:
        log.info("left out %d non-image files", skipped)
    return skipped


def _limits(params: DownloadParams) -> ExtractLimits:
    """The extraction limits the download params set."""
    return ExtractLimits(max_member_bytes=params.max_member_mb * MIB, max_total_bytes=params.max_extract_mb * MIB,
                         max_ratio=params.max_ratio)


def _unpack(archive: Path, out: Path, label: str, limits: ExtractLimits) -> int:
    """Extract ``archive`` beside the output and move its images into ``out``; returns skipped count."""
    staging = out / ".extract"
    extract_archive(archive, staging, limits)
    skipped = _collect_images(_layout_root(staging, label), out, os.replace)
    shutil.rmtree(staging)
    return skipped


# --- Sources --------------------------------------------------------------------------------

def _save_pngs(items: Iterable[tuple[str, Image.Image]], folder: Path, desc: str, total: int) -> None:
    """Write each named image as ``folder/<name>.png`` (atomically, via files.save_with)."""
    for name, image in progress(items, desc=desc, total=total):
        save_with(folder / f"{name}.png", lambda tmp, image=image: image.save(tmp, format="PNG"))


def _embedded(params: DownloadParams, seed: int, out: Path, downloads_dir: Path) -> dict:
    """Bundled photographs cut into seeded crops, plus seeded synthetic paintings (nothing is downloaded)."""
    n_photos = len(embedded.BUNDLED_PHOTOS)
    n_crops = params.crops_per_photo * n_photos
    _save_pngs(embedded.photo_crops(params.crops_per_photo, seed), raw_folder(out, "photos"), "photo crops",
               n_crops)
    log.info("cut %d crops from %d bundled photographs", n_crops, n_photos)
    art = paintings.generate(params.n_paintings, params.painting_size, seed)
    _save_pngs(art, raw_folder(out, "paintings"), "paintings", params.n_paintings)
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
        raise DataError(f"download.url: {one_line(exc)}") from None
    return downloads_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def _discard_unpinned(archive: Path, sha256: str) -> None:
    """Drop a cached archive that could not be used, unless ``download.sha256`` pins its bytes.

    Without a pinned hash nothing says the server sent the right file, so the next run downloads
    it again instead of failing on the same cached bytes; a pinned archive is the one asked for.
    """
    if not sha256:
        archive.unlink(missing_ok=True)
        log.warning("removed the unusable download %s; the next run fetches it again", archive)


def _url(params: DownloadParams, seed: int, out: Path, downloads_dir: Path) -> dict:
    """Download (or reuse the archive cached in ``downloads_dir``), verify it, then extract its images."""
    archive = download_file(params.url, _cache_path(params.url, downloads_dir), params.sha256,
                            params.retries, params.timeout_s, deadline_s=params.deadline_s)
    try:
        skipped = _unpack(archive, out, params.url, _limits(params))
        _count(out)  # an archive without images in a domain is as unusable as a broken one
    except DataError:
        _discard_unpinned(archive, params.sha256)
        raise
    return {"url": params.url, "archive_sha256": sha256_file(archive), "paintings_synthetic": False,
            "photo_sources": [params.url], "skipped_files": skipped}


def _local(params: DownloadParams, seed: int, out: Path, downloads_dir: Path) -> dict:
    """Copy images from a folder, or verify and extract an archive, at ``params.path`` (nothing is cached)."""
    path = Path(params.path)
    if not path.exists():
        raise DataError(f"download.path: {path} does not exist")
    provenance = {"path": str(path), "paintings_synthetic": False, "photo_sources": [str(path)]}
    if path.is_dir():
        if params.sha256:
            log.warning("download.sha256 is ignored: %s is a folder, not an archive", path)
        return {**provenance, "skipped_files": _collect_images(_layout_root(path, str(path)), out, shutil.copyfile)}
    digest = check_sha256(path, params.sha256, str(path))
    return {**provenance, "archive_sha256": digest, "skipped_files": _unpack(path, out, str(path), _limits(params))}


def dataset_hash(folder: Path) -> str:
    """sha256 over every file's relative path and content hash: one id for the whole data set.

    ``manifest.json`` is left out, so the id depends on the data only.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != RAW_MANIFEST):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _count(folder: Path) -> dict[str, int]:
    """Files per domain; an empty domain raises :class:`DataError`."""
    counts = {domain: sum(1 for p in raw_folder(folder, domain).rglob("*") if p.is_file()) for domain in DOMAINS}
    empty = [f"{domain}/" for domain, n in counts.items() if not n]
    if empty:
        raise DataError(f"download: no image files in {' and '.join(empty)}")
    return counts


# A source fills ``out/{photos,paintings}`` and returns its provenance for the manifest. Each is
# called as ``source(params, seed, out, downloads_dir)`` and ignores what it does not need.
Source = Callable[[DownloadParams, int, Path, Path], dict]
SOURCES: dict[str, Source] = {"embedded": _embedded, "url": _url, "local": _local}
BeforeSwap = Callable[[Path, dict], None]  # (the built folder, the summary): record it before it goes in


def fetch_dataset(params: DownloadParams, seed: int, out_dir: Path, downloads_dir: Path,
                  before_swap: BeforeSwap | None = None) -> dict:
    """Build ``out_dir/{photos,paintings}`` and ``out_dir/manifest.json`` from the configured source.

    The folder is built aside and swapped in whole, so a failure leaves the previous data set;
    ``before_swap(folder, summary)`` runs on the finished folder first (the stage logs it to
    MLflow there, so a tracking failure leaves the previous data set too).
    ``params.source`` picks the source from :data:`SOURCES`. Downloaded archives are cached in
    ``downloads_dir``, outside the output; the stage script says where (the library has no default).
    The manifest records source, counts, a data set sha256 and provenance; the returned summary
    (source, counts, hashes, synthetic flag) is what the stage logs to MLflow.
    """
    out_dir = Path(out_dir)
    downloads_dir = Path(downloads_dir)
    log.info("source %s -> %s", params.source, out_dir)
    with atomic_dir(out_dir) as tmp:
        for domain in DOMAINS:
            raw_folder(tmp, domain).mkdir()
        provenance = SOURCES[params.source](params, seed, tmp, downloads_dir)
        counts = _count(tmp)
        manifest = {"source": params.source, "counts": counts, "dataset_sha256": dataset_hash(tmp), **provenance}
        write_json(tmp / RAW_MANIFEST, manifest)
        summary = {key: manifest[key] for key in SUMMARY_KEYS if key in manifest}
        if before_swap:
            before_swap(tmp, summary)
    log.info("wrote %d photos and %d paintings to %s (sha256 %s)", counts["photos"], counts["paintings"],
             out_dir, manifest["dataset_sha256"][:12])
    return summary
