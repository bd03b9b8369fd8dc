"""The preprocess stage's work: turn ``data/raw`` into a clean, deduplicated, split image set.

Every raw file is decoded with :func:`artshift.images.load_rgb`; unusable files are skipped with
a reason (``skipped.csv``), exact duplicates are dropped, the rest is centre-cropped to squares
and split into train/test by content hash, so the split does not depend on file names or order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from artshift.data.layout import (
    DOMAINS,
    PROCESSED_MANIFEST,
    SKIPPED_LIST,
    SPLITS,
    processed_folder,
    raw_folder,
)
from artshift.errors import DataError, ImageError
from artshift.files import atomic_dir, sha256_file, write_text
from artshift.images import load_rgb, resize_and_crop, save_image
from artshift.log import get_logger, progress

MANIFEST_COLUMNS = ["split", "domain", "file", "source", "sha256", "width", "height"]
SKIPPED_COLUMNS = ["source", "domain", "reason"]
_STAGING = ".staging"
_DUPLICATE = "duplicate of "

log = get_logger("preprocess")


@dataclass(frozen=True)
class _Item:
    """One usable raw image: where it came from, its content hash and its decoded size."""

    domain: str
    source: str
    sha256: str
    width: int
    height: int

    @property
    def name(self) -> str:
        """The output file name: the first 16 hex digits of the content hash."""
        return f"{self.sha256[:16]}.png"


def prepare_dataset(raw_dir: Path, out_dir: Path, load_size: int, test_fraction: float, min_size: int,
                    seed: int, before_swap: Callable[[Path, dict], None] | None = None) -> dict:
    """Build ``out_dir`` from ``raw_dir/photos`` and ``raw_dir/paintings``; return a summary.

    Output: ``<split>/<domain>/<hash16>.png`` squares of ``load_size``, ``manifest.csv`` (one
    row per image) and ``skipped.csv`` (one row per unused file: unreadable, too small or a
    duplicate). The folder is built aside and swapped in whole, so a failure leaves the old one;
    ``before_swap(folder, summary)`` runs on the finished folder first (the stage logs it there).
    The summary holds image counts per split and domain, ``n_files``, ``n_skipped`` (unusable
    files), ``n_duplicates`` (dropped copies) and ``manifest_sha256``.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    files, unusable = _list_files(raw_dir)
    log.info(f"found {len(files)} files in {raw_dir}: "
             + ", ".join(f"{sum(d == domain for d, _ in files)} {domain}" for domain in DOMAINS))
    with atomic_dir(out_dir) as tmp:
        items, skipped = _ingest(files, raw_dir, tmp / _STAGING, load_size, min_size)
        skipped = unusable + skipped
        _require_images(items, skipped, raw_dir)
        splits = _assign_splits(items, seed, test_fraction)
        _place(items, splits, tmp)
        manifest = _manifest(items, splits)
        write_text(tmp / PROCESSED_MANIFEST, manifest.to_csv(index=False))
        write_text(tmp / SKIPPED_LIST, pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).to_csv(index=False))
        summary = _summary(files, manifest, skipped, sha256_file(tmp / PROCESSED_MANIFEST))
        if before_swap:
            before_swap(tmp, summary)
    log.info(f"wrote {len(manifest)} images to {out_dir} (manifest sha256 {summary['manifest_sha256'][:12]})")
    return summary


def _list_files(raw_dir: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, str, str]]]:
    """Every regular file under each domain folder as (domain, path), sorted by relative path, and a
    skipped (source, domain, reason) row for each entry that cannot be read as a file: a broken
    link, a link loop, a link to a folder (not followed), an unreadable subfolder.

    All files count, not only known suffixes, so a stray non-image shows up in ``skipped.csv``.
    """
    files, unusable = [], []
    for domain in DOMAINS:
        folder = raw_folder(raw_dir, domain)
        if not folder.is_dir():
            raise DataError(f"preprocess: {folder} not found; run the download stage first")

        def unreadable(error: OSError, domain: str = domain) -> None:
            unusable.append((_source(Path(error.filename), raw_dir), domain, f"cannot read folder ({error.strerror})"))

        for root, folders, names in os.walk(folder, onerror=unreadable):
            for path in (Path(root, name) for name in sorted(folders + names)):
                if path.is_file():
                    files.append((domain, path))
                elif path.is_symlink():
                    unusable.append((_source(path, raw_dir), domain, _link_problem(path)))
    return sorted(files, key=lambda pair: _source(pair[1], raw_dir)), sorted(unusable)


def _source(path: Path, raw_dir: Path) -> str:
    """A raw file's name in the manifest and skip list: its path relative to the raw folder."""
    return path.relative_to(raw_dir).as_posix()


def _link_problem(link: Path) -> str:
    """Why the symbolic link ``link`` is not used as a file."""
    if link.is_dir():
        return f"link to the folder {os.readlink(link)}, not followed"
    try:
        link.stat()
    except OSError as exc:
        return f"link to {os.readlink(link)} cannot be followed ({exc.strerror})"
    return f"link to {os.readlink(link)}, not a regular file"


def _ingest(files: list[tuple[str, Path]], raw_dir: Path, staging: Path, load_size: int,
            min_size: int) -> tuple[list[_Item], list[tuple[str, str, str]]]:
    """Decode, check, deduplicate and crop every file into ``staging/<domain>/``.

    Returns the usable items and the skipped (source, domain, reason) rows; the first file (by
    sorted path) of each distinct picture is kept, later copies are skipped as duplicates.
    """
    items: list[_Item] = []
    skipped: list[tuple[str, str, str]] = []
    first_source: dict[str, str] = {}
    for domain, path in progress(files, desc="preprocess", total=len(files)):
        source = _source(path, raw_dir)
        try:
            image = _load_checked(path, min_size)
        except ImageError as exc:
            # ImageError messages read "<path>: <reason>"; the path is already the source column.
            skipped.append((source, domain, str(exc).removeprefix(f"{path}: ")))
            log.debug(f"skip {exc}")
            continue
        digest = content_hash(image)
        if digest in first_source:
            skipped.append((source, domain, f"{_DUPLICATE}{first_source[digest]}"))
            continue
        first_source[digest] = source
        item = _Item(domain, source, digest, *image.size)
        save_image(resize_and_crop(image, load_size), staging / domain / item.name)
        items.append(item)
    n_duplicates = _count_duplicates(skipped)
    log.info(f"kept {len(items)} images; skipped {len(skipped) - n_duplicates} unusable files "
             f"and {n_duplicates} duplicates")
    return items, skipped


def _load_checked(path: Path, min_size: int) -> Image.Image:
    """:func:`load_rgb`, plus an :class:`ImageError` for images whose shorter side is below ``min_size``."""
    image = load_rgb(path)
    if min(image.size) < min_size:
        width, height = image.size
        raise ImageError(f"{path}: too small ({width}x{height}, shorter side below min_size={min_size})")
    return image


def content_hash(image: Image.Image) -> str:
    """sha256 of an RGB image's size and decoded pixels: the same picture saved twice (other
    format, other metadata) gets the same hash, unlike a hash of the file bytes."""
    digest = hashlib.sha256(f"{image.width}x{image.height}\n".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _require_images(items: list[_Item], skipped: list[tuple[str, str, str]], raw_dir: Path) -> None:
    """Stop with a :class:`DataError` when a domain has no usable image left."""
    for domain in DOMAINS:
        if any(item.domain == domain for item in items):
            continue
        reasons = [f"{source}: {reason}" for source, skipped_domain, reason in skipped if skipped_domain == domain]
        detail = f"{len(reasons)} files skipped, first: {reasons[0]}" if reasons else "folder is empty"
        raise DataError(f"preprocess: no usable {domain} in {raw_folder(raw_dir, domain)} ({detail})")


def _n_test(n: int, test_fraction: float) -> int:
    """How many of ``n`` images go to test: ``round(n * fraction)``, but at least one in test
    and one in train whenever there are two or more (evaluation needs both)."""
    if n < 2:
        return 0
    return min(max(round(n * test_fraction), 1), n - 1)


def _assign_splits(items: list[_Item], seed: int, test_fraction: float) -> dict[str, str]:
    """Map each item's hash to "train" or "test", per domain, from ``seed`` and content alone.

    Items are ranked by ``sha256(f"{seed}:{hash}")``: renaming or reordering files changes
    nothing, a new seed reshuffles, and adding images moves few existing ones.
    """
    splits: dict[str, str] = {}
    for domain in DOMAINS:
        hashes = [item.sha256 for item in items if item.domain == domain]
        ranked = sorted(hashes, key=lambda digest: hashlib.sha256(f"{seed}:{digest}".encode()).hexdigest())
        n_test = _n_test(len(ranked), test_fraction)
        splits |= {digest: ("test" if rank < n_test else "train") for rank, digest in enumerate(ranked)}
        log.info(f"{domain}: {len(ranked) - n_test} train / {n_test} test"
                 + (" (a single image: nothing left to evaluate on)" if n_test == 0 else ""))
    return splits


def _place(items: list[_Item], splits: dict[str, str], out: Path) -> None:
    """Move each staged PNG to ``out/<split>/<domain>/`` and remove the staging folder."""
    for split in SPLITS:
        for domain in DOMAINS:
            processed_folder(out, split, domain).mkdir(parents=True, exist_ok=True)
    for item in items:
        os.replace(out / _STAGING / item.domain / item.name,
                   processed_folder(out, splits[item.sha256], item.domain) / item.name)
    for folder in (out / _STAGING).iterdir():
        folder.rmdir()  # empty by now: every staged file was moved
    (out / _STAGING).rmdir()


def _manifest(items: list[_Item], splits: dict[str, str]) -> pd.DataFrame:
    """One row per kept image (paths relative to the output folder), sorted for stable bytes."""
    rows = [(splits[item.sha256], item.domain, _relative_file(splits[item.sha256], item), item.source,
             item.sha256, item.width, item.height) for item in items]
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return frame.sort_values(["split", "domain", "file"], ignore_index=True)


def _relative_file(split: str, item: _Item) -> str:
    """The manifest's ``file`` column: ``<split>/<domain>/<name>``, relative to the output folder."""
    return (processed_folder(Path(), split, item.domain) / item.name).as_posix()


def _summary(files: list[tuple[str, Path]], manifest: pd.DataFrame, skipped: list[tuple[str, str, str]],
             manifest_sha256: str) -> dict:
    """The numbers the stage logs to MLflow."""
    counts = {split: {domain: int(((manifest["split"] == split) & (manifest["domain"] == domain)).sum())
                      for domain in DOMAINS} for split in SPLITS}
    n_duplicates = _count_duplicates(skipped)
    return {"counts": counts, "n_files": len(files), "n_images": len(manifest),
            "n_skipped": len(skipped) - n_duplicates, "n_duplicates": n_duplicates,
            "manifest_sha256": manifest_sha256}


def _count_duplicates(skipped: list[tuple[str, str, str]]) -> int:
    """How many skipped rows are dropped copies rather than unusable files."""
    return sum(reason.startswith(_DUPLICATE) for _, _, reason in skipped)
