import os
import time

import pytest
import torch

from artshift.errors import ArtShiftError, DataError
from artshift.metrics import weights
from artshift.metrics.inception import RANDOM_INIT_LABEL, STANDARD_LABEL, random_state_dict


def test_wrong_sha256_is_refused(tmp_path):
    path = tmp_path / weights.WEIGHTS_FILE
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(ArtShiftError, match="does not match the FID Inception weights"):
        weights.load_verified(path)


def test_explicit_path_must_exist(tmp_path):
    with pytest.raises(ArtShiftError, match="evaluate.inception_weights: .* not found"):
        weights.candidate_paths(str(tmp_path / "nope.pth"))


def test_search_order_env_dir_then_hub_cache(tmp_path, monkeypatch):
    env_dir, hub = tmp_path / "env", tmp_path / "hub"
    monkeypatch.setenv("ARTSHIFT_WEIGHTS_DIR", str(env_dir))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    assert weights.candidate_paths("") == []
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / weights.WEIGHTS_FILE).write_bytes(b"x")
    assert weights.candidate_paths("") == [hub / "checkpoints" / weights.WEIGHTS_FILE]
    env_dir.mkdir()
    (env_dir / weights.WEIGHTS_FILE).write_bytes(b"y")
    assert weights.candidate_paths("")[0] == env_dir / weights.WEIGHTS_FILE


def test_verified_weights_give_the_standard_label(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save(random_state_dict(0), path)
    from artshift.files import sha256_file

    monkeypatch.setattr(weights, "SHA256_PREFIX", sha256_file(path)[:8])
    extractor = weights.load_feature_extractor(str(path), "pytorch-fid", seed=0)
    assert extractor.label == STANDARD_LABEL


def test_offline_falls_back_to_labelled_random_init(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("ARTSHIFT_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("ARTSHIFT_OFFLINE", "1")
    extractor = weights.load_feature_extractor("", "clean-fid", seed=0)
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
    dest = tmp_path / "hub" / weights.WEIGHTS_FILE
    assert weights.download_weights(dest) is None and weights.download_weights(dest) is None
    assert len(attempts) == 1  # the second run read the marker instead of waiting on the network
    marker = weights.failure_marker(dest)
    assert "connection refused" in marker.read_text()
    stale = time.time() - weights.RETRY_AFTER_S - 1
    os.utime(marker, (stale, stale))
    monkeypatch.setattr(weights, "download_file", lambda url, dest, **kwargs: dest.write_bytes(b"w") or dest)
    assert weights.download_weights(dest) == dest and not marker.exists()  # retried after a day; marker gone
