import numpy as np
import pytest
import torch

from artshift.config import EvaluateParams
from artshift.evaluation import evaluate
from artshift.metrics.features import FeatureExtractor
from artshift.metrics.inception import random_state_dict
from artshift.models.networks import DCGANGenerator, ResnetGenerator
from conftest import write_processed


@pytest.fixture
def data_dir(tmp_path):
    return write_processed(tmp_path, per_folder=4)


class CountingExtractor(FeatureExtractor):
    calls = 0

    def __call__(self, images, batch_size=16):
        type(self).calls += 1
        return super().__call__(images, batch_size)

# Samples drawn from noise translate no photo: no content score, no checkerboard relative to a photo.
SAMPLE_SCORES = {"fid", "kid_mean", "kid_std", "diversity", "checkerboard"}
TRANSLATION_SCORES = SAMPLE_SCORES | {"content", "checkerboard_vs_photo"}


def test_report_has_every_method_and_metric_and_reuses_reference_cache(data_dir, tmp_path):
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=1)
    extractor = CountingExtractor(random_state_dict(0), "inception-v3-random-init (test)")
    cfg = EvaluateParams(batch_size=4, kid_subsets=5, kid_subset_size=4)
    report, grid = evaluate(generator, data_dir, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=32)
    assert report["n_photos"] == 4 and report["n_paintings"] == 4 and report["resize"] == "pytorch-fid"
    for name in ("model", "identity", "reinhard"):
        assert set(report[name]) == TRANSLATION_SCORES
        assert np.isfinite(list(report[name].values())).all()
    assert report["identity"]["content"] == pytest.approx(1.0)
    assert report["reinhard"]["content"] < 1.0
    assert grid.size == (3 * 32 + 4 * 2, 16 + 4 * 32 + 5 * 2)  # labels photo | Reinhard | model above 4 rows
    assert CountingExtractor.calls == 4  # paintings + three candidate sets
    again, _ = evaluate(generator, data_dir, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=32)
    assert CountingExtractor.calls == 7  # the paintings' features came from the cache
    assert again["model"] == report["model"]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_dcgan_samples_are_scored_without_content(data_dir, tmp_path):
    torch.manual_seed(0)
    generator = DCGANGenerator(z_dim=8, ngf=8, image_size=32)
    extractor = FeatureExtractor(random_state_dict(0), "inception-v3-random-init (test)")
    cfg = EvaluateParams(batch_size=4, kid_subsets=5, kid_subset_size=4)
    report, grid = evaluate(generator, data_dir, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=32)
    assert set(report["model"]) == SAMPLE_SCORES
    assert set(report["identity"]) == TRANSLATION_SCORES
    assert report["model"]["fid"] > 0 and report["paintings_diversity"] > 0
    assert grid.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)  # the 4 samples in a 2 × 2 tile
    again, _ = evaluate(generator, data_dir, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=32)
    assert again["model"] == report["model"]  # samples come from seeded noise


def test_metric_registry_computes_every_metric_and_content_only_for_translations():
    from artshift.config import EvaluateParams
    from artshift.metrics.registry import METRICS, MetricInputs, compute_metrics

    rng = np.random.default_rng(0)
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    features, reference = rng.normal(size=(6, 8)), rng.normal(size=(7, 8))
    cfg = EvaluateParams(kid_subsets=3, kid_subset_size=4)
    translated = compute_metrics(MetricInputs(images, features, reference, images, cfg, seed=0))
    assert set(METRICS) == {"fid", "kid", "diversity", "content", "checkerboard", "style"}
    assert set(translated) == TRANSLATION_SCORES
    assert translated["content"] == pytest.approx(1.0)  # the images are their own photos
    sampled = compute_metrics(MetricInputs(images, features, reference, None, cfg, seed=0))
    assert set(sampled) == SAMPLE_SCORES
    assert sampled["fid"] == translated["fid"]


def test_tracked_metric_names_label_random_init_features():
    from artshift.evaluation import CANDIDATES, tracked_metrics

    report = {"feature_extractor": "inception-v3-random-init (seed 0)", "paintings_diversity": 0.8,
              "paintings_checkerboard": 0.003, **{name: {"fid": float(i)} for i, name in enumerate(CANDIDATES)}}
    assert tracked_metrics(report) == {"eval/model/fid_random_init": 0.0, "eval/identity/fid_random_init": 1.0,
                                       "eval/reinhard/fid_random_init": 2.0, "eval/paintings_diversity": 0.8,
                                       "eval/paintings_checkerboard": 0.003}
    report["feature_extractor"] = "inception-v3-fid (pytorch-fid weights)"
    assert "eval/model/fid" in tracked_metrics(report)


def test_evaluation_scores_centre_crops_at_the_training_size(data_dir, tmp_path):
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=1)
    extractor = FeatureExtractor(random_state_dict(0), "inception-v3-random-init (test)")
    cfg = EvaluateParams(batch_size=4, kid_subsets=5, kid_subset_size=4, device="cpu")
    report, grid = evaluate(generator, data_dir, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=16)
    assert grid.size == (3 * 16 + 4 * 2, 16 + 4 * 16 + 5 * 2)  # 16 px centre crops of the 32 px test images
    full, _ = evaluate(generator, data_dir, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=32)
    assert report["identity"]["fid"] != full["identity"]["fid"]  # another reference set, not the cached one
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
