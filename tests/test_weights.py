import dataclasses
import os
import re
import time

import pytest
import torch

from artshift import weights
from artshift.errors import ArtShiftError, DataError
from artshift.files import sha256_file
from artshift.metrics.inception import RANDOM_INIT_LABEL, STANDARD_LABEL, random_state_dict
from artshift.metrics.weights import INCEPTION_WEIGHTS, load_feature_extractor
from artshift.models.adain import VGG19_WEIGHTS

SPECS = pytest.mark.parametrize("spec", [INCEPTION_WEIGHTS, VGG19_WEIGHTS], ids=["inception", "vgg19"])


@SPECS
def test_wrong_sha256_is_refused(tmp_path, spec):
    path = tmp_path / spec.file
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(ArtShiftError, match=f"does not match the {re.escape(spec.title)}.*fix {spec.param}"):
        weights.load_verified(spec, path)


def test_hash_prefix_comes_from_the_hub_file_name():
    assert (INCEPTION_WEIGHTS.sha256_prefix, VGG19_WEIGHTS.sha256_prefix) == ("6726825d", "dcbb9e9d")
    assert VGG19_WEIGHTS.url.endswith("/" + VGG19_WEIGHTS.file)


@SPECS
def test_explicit_path_must_exist(tmp_path, spec):
    with pytest.raises(ArtShiftError, match=f"{spec.param}: .* not found"):
        weights.candidate_paths(spec, str(tmp_path / "nope.pth"))


@SPECS
def test_search_order_env_dir_then_hub_cache(tmp_path, monkeypatch, spec):
    env_dir, hub = tmp_path / "env", tmp_path / "hub"
    monkeypatch.setenv("ARTSHIFT_WEIGHTS_DIR", str(env_dir))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    assert weights.candidate_paths(spec, "") == []
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / spec.file).write_bytes(b"x")
    assert weights.candidate_paths(spec, "") == [hub / "checkpoints" / spec.file]
    env_dir.mkdir()
    (env_dir / spec.file).write_bytes(b"y")
    assert weights.candidate_paths(spec, "")[0] == env_dir / spec.file


def test_verified_weights_give_the_standard_label(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save(random_state_dict(0), path)
    monkeypatch.setattr("artshift.metrics.weights.INCEPTION_WEIGHTS",
                        dataclasses.replace(INCEPTION_WEIGHTS, file=f"w-{sha256_file(path)[:8]}.pth"))
    extractor = load_feature_extractor(str(path), "pytorch-fid", seed=0)
    assert extractor.label == STANDARD_LABEL


def test_offline_falls_back_to_labelled_random_init(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("ARTSHIFT_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("ARTSHIFT_OFFLINE", "1")
    extractor = load_feature_extractor("", "clean-fid", seed=0)
    assert extractor.label.startswith(RANDOM_INIT_LABEL) and extractor.resize == "clean-fid"
    features = extractor(torch.rand(2, 3, 40, 40) * 2 - 1)
    assert features.shape == (2, 2048)


def test_a_failed_download_is_not_retried_for_a_day(tmp_path, monkeypatch):
    monkeypatch.delenv("ARTSHIFT_OFFLINE", raising=False)
    attempts = []

    def unreachable(url, dest, **kwargs):
        attempts.append(url)
        raise DataError(f"{url}: connection refused")

    monkeypatch.setattr(weights, "download_file", unreachable)
    dest = tmp_path / "hub" / INCEPTION_WEIGHTS.file
    assert weights.download_weights(INCEPTION_WEIGHTS, dest) is None
    assert weights.download_weights(INCEPTION_WEIGHTS, dest) is None
    assert len(attempts) == 1  # the second run read the marker instead of waiting on the network
    marker = weights.failure_marker(dest)
    assert "connection refused" in marker.read_text()
    stale = time.time() - weights.RETRY_AFTER_S - 1
    os.utime(marker, (stale, stale))
    monkeypatch.setattr(weights, "download_file", lambda url, dest, **kwargs: dest.write_bytes(b"w") or dest)
    # retried after a day; the marker is gone
    assert weights.download_weights(INCEPTION_WEIGHTS, dest) == dest and not marker.exists()
