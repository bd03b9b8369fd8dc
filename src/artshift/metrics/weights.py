"""Finding the standard FID Inception weights, or saying clearly that we could not.

Search order: the ``evaluate.inception_weights`` param → ``$ARTSHIFT_WEIGHTS_DIR`` → the torch
hub checkpoint cache → a download from pytorch-fid's release URL into that cache. Every file is
checked against the sha256 the file name carries (torch hub's convention) before it is loaded.
When nothing can be had (offline), the same network runs with seeded random weights and the
label says so; there is no other fallback. A failed download is remembered for a day (a marker
file beside the cache path) so that offline machines do not wait for it on every stage run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from artshift.data.download import download_file
from artshift.errors import ArtShiftError, DataError
from artshift.files import sha256_file
from artshift.log import get_logger
from artshift.metrics.features import FeatureExtractor
from artshift.metrics.inception import RANDOM_INIT_LABEL, STANDARD_LABEL, random_state_dict

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
SHA256_PREFIX = "6726825d"
RETRY_AFTER_S = 24 * 3600  # after a failed download, do not try again for this long
log = get_logger("weights")


def hub_cache_path() -> Path:
    """Where torch hub (and pytorch-fid) keep downloaded checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def candidate_paths(explicit: str) -> list[Path]:
    """Places to look, in order; an explicit path that does not exist is an error, not a skip."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ArtShiftError(f"evaluate.inception_weights: {path} not found")
        return [path]
    paths = []
    if os.environ.get("ARTSHIFT_WEIGHTS_DIR"):
        paths.append(Path(os.environ["ARTSHIFT_WEIGHTS_DIR"]) / WEIGHTS_FILE)
    paths.append(hub_cache_path())
    return [p for p in paths if p.is_file()]


def load_verified(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict in ``path`` after checking its sha256; a mismatch is refused."""
    digest = sha256_file(path)
    if not digest.startswith(SHA256_PREFIX):
        raise ArtShiftError(f"{path}: sha256 {digest[:16]}… does not match the FID Inception weights "
                            f"(expected {SHA256_PREFIX}…); delete the file or fix evaluate.inception_weights")
    return torch.load(path, map_location="cpu", weights_only=True)


def failure_marker(dest: Path) -> Path:
    """The file whose age says when a download into ``dest`` last failed."""
    return dest.with_name(dest.name + ".failed")


def _failed_recently(marker: Path) -> bool:
    try:
        return time.time() - marker.stat().st_mtime < RETRY_AFTER_S
    except FileNotFoundError:
        return False


def download_weights(dest: Path, url: str = WEIGHTS_URL) -> Path | None:
    """Fetch the weights into ``dest``; None (with the reason logged) when offline, or when a
    download failed less than :data:`RETRY_AFTER_S` ago (delete the marker file to retry now)."""
    if os.environ.get("ARTSHIFT_OFFLINE"):
        log.info("ARTSHIFT_OFFLINE is set: not downloading %s", url)
        return None
    marker = failure_marker(dest)
    if _failed_recently(marker):
        log.info("not retrying the FID Inception weights download until %s (delete %s to retry now)",
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(marker.stat().st_mtime + RETRY_AFTER_S)), marker)
        return None
    try:
        download_file(url, dest, retries=1, timeout_s=30.0)
    except DataError as exc:
        log.warning("could not download the FID Inception weights: %s", exc)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {exc}\n")
        return None
    marker.unlink(missing_ok=True)
    return dest


def load_feature_extractor(explicit: str, resize: str, seed: int) -> FeatureExtractor:
    """The standard FID extractor when its weights can be found or fetched, else a labelled random one."""
    paths = candidate_paths(explicit) or [p for p in [download_weights(hub_cache_path())] if p]
    if paths:
        log.info("FID Inception weights: %s", paths[0])
        return FeatureExtractor(load_verified(paths[0]), STANDARD_LABEL, resize)
    label = f"{RANDOM_INIT_LABEL} (seed {seed}, kaiming normal)"
    log.warning("standard FID weights unavailable: using %s; these FIDs are NOT comparable with "
                "published numbers", label)
    return FeatureExtractor(random_state_dict(seed), label, resize)
