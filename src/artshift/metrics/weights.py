"""The standard FID Inception weights, found by the one weights lookup (:mod:`artshift.weights`).

Search order: the ``evaluate.inception_weights`` param → ``$ARTSHIFT_WEIGHTS_DIR`` → the torch
hub checkpoint cache → a download from pytorch-fid's release URL into that cache, each file
checked against its sha256. When nothing can be had (offline), the same network runs with
seeded random weights and the label says so; there is no other fallback.
"""

from __future__ import annotations

from artshift.log import get_logger
from artshift.metrics.features import FeatureExtractor
from artshift.metrics.inception import RANDOM_INIT_LABEL, STANDARD_LABEL, random_state_dict
from artshift.weights import WeightsSpec, find_weights

INCEPTION_WEIGHTS = WeightsSpec(
    title="FID Inception weights", file="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    param="evaluate.inception_weights")
log = get_logger("weights")


def load_feature_extractor(explicit: str, resize: str, seed: int) -> FeatureExtractor:
    """The standard FID extractor when its weights can be found or fetched, else a labelled random one."""
    found = find_weights(INCEPTION_WEIGHTS, explicit)
    if found:
        return FeatureExtractor(found[1], STANDARD_LABEL, resize)
    label = f"{RANDOM_INIT_LABEL} (seed {seed}, kaiming normal)"
    log.warning("standard FID weights unavailable: using %s; these FIDs are NOT comparable with "
                "published numbers", label)
    return FeatureExtractor(random_state_dict(seed), label, resize)
