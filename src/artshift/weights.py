"""Finding pretrained weights files, or saying clearly that we could not.

One lookup for every pretrained network ArtShift uses (FID's Inception, AdaIN's VGG-19), each
described by a :class:`WeightsSpec`. Search order: the file named by the spec's param → the
spec's file in ``$ARTSHIFT_WEIGHTS_DIR`` → in the torch hub checkpoint cache → a download from
the spec's URL into that cache. Every file is checked against the sha256 prefix its name
carries (torch hub's convention, ``<name>-<prefix>.pth``) before it is loaded. A failed download
is remembered for a day (a marker file beside the cache path) so that offline machines do not
wait for it on every stage run; ``ARTSHIFT_OFFLINE`` skips the attempt. What to do when nothing
is found (a labelled random network) is the caller's choice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from artshift.data.download import download_file
from artshift.errors import ArtShiftError, DataError
from artshift.files import sha256_file
from artshift.log import get_logger

RETRY_AFTER_S = 24 * 3600  # after a failed download, do not try again for this long
log = get_logger("weights")


@dataclass(frozen=True)
class WeightsSpec:
    """One pretrained weights file: what to call it, its hub file name, where to get it, and the
    param that may point at a local copy."""

    title: str  # in messages, e.g. "FID Inception weights"
    file: str  # torch hub's name: <name>-<first 8+ hex digits of its sha256>.pth
    url: str
    param: str  # e.g. "evaluate.inception_weights"

    @property
    def sha256_prefix(self) -> str:
        """The hash prefix the file name carries."""
        return self.file.rsplit("-", 1)[-1].split(".")[0]


def hub_cache_path(spec: WeightsSpec) -> Path:
    """Where torch hub keeps ``spec``'s file once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / spec.file


def candidate_paths(spec: WeightsSpec, explicit: str) -> list[Path]:
    """Existing files to try, in order; an explicit path that does not exist is an error, not a skip."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ArtShiftError(f"{spec.param}: {path} not found")
        return [path]
    paths = []
    if os.environ.get("ARTSHIFT_WEIGHTS_DIR"):
        paths.append(Path(os.environ["ARTSHIFT_WEIGHTS_DIR"]) / spec.file)
    paths.append(hub_cache_path(spec))
    return [p for p in paths if p.is_file()]


def load_verified(spec: WeightsSpec, path: Path) -> dict[str, torch.Tensor]:
    """The state_dict in ``path`` after checking its sha256; a mismatch is refused."""
    digest = sha256_file(path)
    if not digest.startswith(spec.sha256_prefix):
        raise ArtShiftError(f"{path}: sha256 {digest[:16]}… does not match the {spec.title} "
                            f"(expected {spec.sha256_prefix}…); delete the file or fix {spec.param}")
    return torch.load(path, map_location="cpu", weights_only=True)


def failure_marker(dest: Path) -> Path:
    """The file whose age says when a download into ``dest`` last failed."""
    return dest.with_name(dest.name + ".failed")


def _failed_recently(marker: Path) -> bool:
    try:
        return time.time() - marker.stat().st_mtime < RETRY_AFTER_S
    except FileNotFoundError:
        return False


def download_weights(spec: WeightsSpec, dest: Path) -> Path | None:
    """Fetch ``spec``'s file into ``dest``; None (with the reason logged) when offline, or when a
    download failed less than :data:`RETRY_AFTER_S` ago (delete the marker file to retry now)."""
    if os.environ.get("ARTSHIFT_OFFLINE"):
        log.info("ARTSHIFT_OFFLINE is set: not downloading %s", spec.url)
        return None
    marker = failure_marker(dest)
    if _failed_recently(marker):
        log.info("not retrying the %s download until %s (delete %s to retry now)", spec.title,
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(marker.stat().st_mtime + RETRY_AFTER_S)), marker)
        return None
    try:
        download_file(spec.url, dest, retries=1, timeout_s=30.0)
    except DataError as exc:
        log.warning("could not download the %s: %s", spec.title, exc)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {exc}\n")
        return None
    marker.unlink(missing_ok=True)
    return dest


def find_weights(spec: WeightsSpec, explicit: str) -> tuple[Path, dict[str, torch.Tensor]] | None:
    """The verified state_dict of ``spec`` and where it came from, searched in the module's
    order (the download only when no file is found); None when none can be had."""
    paths = candidate_paths(spec, explicit) or [p for p in [download_weights(spec, hub_cache_path(spec))] if p]
    if not paths:
        return None
    log.info("%s: %s", spec.title, paths[0])
    return paths[0], load_verified(spec, paths[0])
