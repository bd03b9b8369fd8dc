"""AdaIN: the operation, the VGG encoder and its weights, training, resume, evaluation and export."""

import dataclasses
import logging

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from artshift import checkpoint
from artshift.config import EvaluateParams, parse_params
from artshift.data.dataset import load_folder
from artshift.errors import ArtShiftError, ParamsError
from artshift.files import sha256_file
from artshift.generator_io import METADATA_KEY, REGISTERED_NAMES, GeneratorInput
from artshift.losses import channel_mean_std
from artshift.models import adain as adain_module
from artshift.models.adain import VGG19_WEIGHTS, AdaINGenerator, adain, pretrained_vgg
from artshift.models.vgg import RANDOM_INIT_LABEL, STANDARD_LABEL, random_vgg_state_dict
from artshift.train import TrainState, seed_everything
from artshift.train import train as train_into
from conftest import random_adain as generator

TINY = {"method": "adain", "ngf": 8, "ndf": 8, "log_every": 1, "sample_every": 100, "checkpoint_every": 2,
        "n_samples": 2}
# Bright paintings in four tints (the photos are dark and grey).
PALETTES = [(215, 170, 160), (170, 210, 175), (165, 180, 215), (215, 205, 160)]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No pretrained VGG here: no download attempt, an empty hub cache, the seeded random VGG."""
    monkeypatch.setenv("ARTSHIFT_OFFLINE", "1")
    monkeypatch.delenv("ARTSHIFT_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def write_palettes(root, size=32):
    """Processed data: dark grey noisy photos and paintings in :data:`PALETTES` (four each per split)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for domain in ("photos", "paintings"):
            folder = root / "processed" / split / domain
            folder.mkdir(parents=True)
            for i, palette in enumerate(PALETTES):
                base = np.full(3, 50 + 10 * i) if domain == "photos" else np.array(palette)
                pixels = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{split}{domain}{i}.png")
    return root / "processed"


def test_adain_matches_a_hand_computation_and_gives_the_styles_statistics():
    rng = torch.Generator().manual_seed(0)
    content = torch.randn(2, 4, 5, 6, generator=rng) * 3 + 1
    style = torch.randn(2, 4, 7, 3, generator=rng) * 1.5 - 2  # another size
    out = adain(content, style)
    c, s = content.double().numpy(), style.double().numpy()
    for n in range(2):
        for ch in range(4):
            x, y = c[n, ch], s[n, ch]
            expected = (x - x.mean()) / np.sqrt(x.var() + 1e-5) * np.sqrt(y.var() + 1e-5) + y.mean()
            np.testing.assert_allclose(out[n, ch].numpy(), expected, atol=1e-5)
    out_std, out_mean = torch.std_mean(out, dim=(2, 3), correction=0)
    style_std, style_mean = torch.std_mean(style, dim=(2, 3), correction=0)
    assert (out_mean - style_mean).abs().max() < 1e-5 and (out_std - style_std).abs().max() < 1e-5
    mean, std = channel_mean_std(style)
    assert mean.shape == (2, 4, 1, 1) and torch.allclose(std, (style_std ** 2 + 1e-5).sqrt()[..., None, None])


def test_alpha_zero_is_the_decoders_reconstruction_of_the_photo_and_alpha_mixes():
    net = generator()
    rng = torch.Generator().manual_seed(1)
    photo = torch.rand(2, 3, 32, 40, generator=rng) * 2 - 1
    style, other = (torch.rand(2, 3, 24, 56, generator=rng) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        reconstruction = net.decoder(net.encoder(photo)[-1])
        assert torch.allclose(net(photo, style, alpha=0.0), reconstruction, atol=1e-6)
        assert torch.allclose(net(photo, other, alpha=0.0), reconstruction, atol=1e-6)
        assert net(photo, style).shape == photo.shape
        assert (net(photo, style) - net(photo, other)).abs().mean() > 1e-2  # the style matters at alpha 1
        features = net.encoder(photo)[-1]
        half = net(photo, style, alpha=torch.tensor(0.5), details=True).target
        full = adain(features, net.encoder(style)[-1])
        assert torch.allclose(half, 0.5 * full + 0.5 * features, atol=1e-5)


def _torchvision_layout(tmp_path, mutate=None):
    """torchvision's VGG-19 ``features`` layers (as its vgg19-dcbb9e9d.pth stores them, up to
    conv4_1, plus a deeper layer and a classifier key to ignore) written to a file; its path and
    the torchvision network."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(3)
    features = make_layers(cfgs["E"][:12])  # VGG-19's configuration up to conv4_1
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state |= {"features.21.weight": torch.zeros(512, 512, 3, 3), "classifier.6.bias": torch.zeros(1000)}
    if mutate:
        mutate(state)
    path = tmp_path / "vgg19-local.pth"
    torch.save(state, path)
    return path, features.eval()


def _trust(monkeypatch, path):
    """Make ``path``'s hash the expected one (a local file stands in for torchvision's)."""
    spec = dataclasses.replace(VGG19_WEIGHTS, file=f"vgg19-{sha256_file(path)[:8]}.pth")
    monkeypatch.setattr(adain_module, "VGG19_WEIGHTS", spec)
    return spec


def test_torchvision_weights_load_into_the_encoder(tmp_path, monkeypatch):
    path, reference = _torchvision_layout(tmp_path)
    spec = _trust(monkeypatch, path)
    env_dir = tmp_path / "weights"
    env_dir.mkdir()
    path.rename(env_dir / spec.file)
    monkeypatch.setenv("ARTSHIFT_WEIGHTS_DIR", str(env_dir))  # found there, no param needed
    state, label = pretrained_vgg("")
    assert label == STANDARD_LABEL and len(state) == 18  # 9 convs up to conv4_1, nothing deeper
    net = AdaINGenerator(ngf=8)
    net.encoder.load_weights(state, label)
    images = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        expected = reference(((images + 1) / 2 - mean[:, None, None]) / std[:, None, None])
        taps = net.encoder(images)
    assert [t.shape[1] for t in taps] == [64, 128, 256, 512] and torch.allclose(taps[-1], expected, atol=1e-5)
    restored = AdaINGenerator(ngf=8)
    restored.load_state_dict(net.state_dict())  # the label travels with the weights
    assert restored.encoder.label == STANDARD_LABEL


@pytest.mark.parametrize("mutate,message", [
    (lambda state: state.pop("features.19.weight"), r"not torchvision VGG-19 weights: no 'features.19.weight'"),
    (lambda state: state.update({"features.0.weight": torch.zeros(64, 1, 3, 3)}),
     r"not torchvision VGG-19 weights: 'features.0.weight' has shape \(64, 1, 3, 3\), expected \(64, 3, 3, 3\)"),
], ids=["missing-layer", "wrong-shape"])
def test_weights_of_another_layout_are_refused_naming_the_file(tmp_path, monkeypatch, mutate, message):
    path, _ = _torchvision_layout(tmp_path, mutate)
    _trust(monkeypatch, path)
    with pytest.raises(ArtShiftError, match=f"^{path}: {message}"):
        pretrained_vgg(str(path))


def test_weights_with_another_hash_are_refused(tmp_path):
    path, _ = _torchvision_layout(tmp_path)
    with pytest.raises(ArtShiftError, match=r"does not match the VGG-19 weights .*dcbb9e9d.*train.vgg_weights"):
        pretrained_vgg(str(path))
    with pytest.raises(ArtShiftError, match="train.vgg_weights: .* not found"):
        pretrained_vgg(str(tmp_path / "missing.pth"))


def test_offline_uses_the_seeded_random_vgg_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="artshift.weights"):
        state, label = pretrained_vgg("")
    assert label == f"{RANDOM_INIT_LABEL} (seed 0, kaiming normal)"
    assert "standard VGG-19 weights unavailable: using vgg19-random-init" in caplog.text
    assert all(torch.equal(state[k], v) for k, v in random_vgg_state_dict(0).items())


def test_params_name_the_key():
    with pytest.raises(ParamsError, match=r"^train.crop_size: AdaIN trains on sides of at least 24 px that are "
                                          r"multiples of 8 .*, got 36 "):
        parse_params({"preprocess": {"load_size": 36}, "train": {"method": "adain"}})
    with pytest.raises(ParamsError, match=r"^train.lambda_style: must be >= 0"):
        parse_params({"train": {"method": "adain", "lambda_style": -1}})
    assert parse_params({"preprocess": {"load_size": 40}, "train": {"method": "adain", "crop_size": 32}})


def _colour_gap(net, photos, styles):
    """Mean |Δ| of the RGB channel means and stds between each output and its own style image."""
    with torch.no_grad():
        out = net.eval()(photos, styles)
    (out_std, out_mean), (style_std, style_mean) = (torch.std_mean(x, dim=(2, 3)) for x in (out, styles))
    return float(((out_mean - style_mean).abs() + (out_std - style_std).abs()).mean())


def test_short_training_moves_the_outputs_colours_toward_their_style_images(tmp_path):
    """Dark grey photos, bright tinted paintings: after 40 steps on random pairs (default lr), each
    test photo painted in a test painting's style has far closer colour statistics to that
    painting's. (Telling the tints apart takes longer: about 200 steps at lr 1e-4.)"""
    data = write_palettes(tmp_path)
    params = parse_params({"seed": 0, "preprocess": {"load_size": 32},
                           "train": {**TINY, "steps": 40, "log_every": 40, "sample_every": 40,
                                     "checkpoint_every": 40, "n_samples": 4}})
    photos, paintings = load_folder(data / "test" / "photos"), load_folder(data / "test" / "paintings")
    styles = paintings[[1, 2, 3, 0]]  # each photo with another painting than its index
    untrained = TrainState.create(params, seed_everything(0), image_size=32).model.G  # the run's initial G
    before = _colour_gap(untrained, photos, styles)
    train_into(params, data, tmp_path / "checkpoints", tmp_path / "generator.pt")
    net, record = checkpoint.load_generator(tmp_path / "generator.pt")
    assert record["method"] == "adain" and record["network"] == "AdaINGenerator"
    assert net.encoder.label.startswith(RANDOM_INIT_LABEL)
    after = _colour_gap(net, photos, styles)
    assert after < 0.5 * before, (before, after)


def test_trains_with_the_stabilisers_and_resumes_exactly(tmp_path):
    data = write_palettes(tmp_path)
    stabilisers = {"gan_loss": "hinge", "r1_gamma": 1.0, "diffaugment": ["color"], "ema": 0.9}
    params = parse_params({"seed": 0, "preprocess": {"load_size": 32}, "train": {**TINY, "steps": 4, **stabilisers}})
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    result = train_into(params, data, straight / "checkpoints", straight / "generator.pt")
    assert {"g_gan", "content", "style", "d_adv"} <= set(result.losses)
    assert all(np.isfinite(v) for v in result.losses.values())
    train_into(params, data, interrupted / "checkpoints", interrupted / "generator.pt")
    (interrupted / "checkpoints" / "step_0000004.pt").unlink()  # as if killed after step 2
    assert train_into(params, data, interrupted / "checkpoints", interrupted / "generator.pt").resumed_from == 2
    a, b = (checkpoint.load(out / "generator.pt", "generator")["state_dict"] for out in (straight, interrupted))
    tensors = [k for k, v in a.items() if isinstance(v, torch.Tensor)]
    assert all(torch.equal(a[k], b[k]) for k in tensors) and a["encoder._extra_state"] == b["encoder._extra_state"]


class PixelStatistics:
    """A stand-in for the Inception extractor, 100× cheaper (these tests are about the pairs and
    the style score, not FID): each image's channel means and stds as its features."""

    label, resize = "pixel statistics (test)", "pytorch-fid"

    def to(self, device):
        return self

    def __call__(self, images, batch_size=16):
        std, mean = torch.std_mean(images, dim=(2, 3))
        return torch.cat([mean, std], dim=1).double().numpy()


def test_evaluation_pairs_each_photo_with_a_painting_and_scores_style(tmp_path):
    from artshift.evaluation import evaluate, style_pairs, tracked_metrics

    data = write_palettes(tmp_path)
    net = generator()
    net.encoder.label = f"{RANDOM_INIT_LABEL} (seed 0, kaiming normal)"
    extractor = PixelStatistics()
    cfg = EvaluateParams(batch_size=4, kid_subsets=5, kid_subset_size=4)
    report, grid = evaluate(net, data, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=32)
    assert report["style_extractor"] == net.encoder.label
    for name in ("model", "identity", "reinhard"):
        assert {"fid", "kid_mean", "content", "style_distance"} <= set(report[name])
    assert report["identity"]["content"] == pytest.approx(1.0)
    # Reinhard matches each photo's colours to its own painting: closer in style than the photo
    assert report["reinhard"]["style_distance"] < report["identity"]["style_distance"]
    side = 4 * 32 + 5 * 2  # photo | style | Reinhard | model, 4 rows, under a strip of their labels
    assert grid.size[0] == side and side < grid.size[1] < side + 32
    tracked = tracked_metrics(report)
    assert "eval/model/style_distance_random_init" in tracked and "eval/model/fid" in tracked
    assert np.array_equal(style_pairs(4, 4, seed=0), style_pairs(4, 4, seed=0))
    again, _ = evaluate(net, data, extractor, cfg, seed=0, cache_dir=tmp_path / "cache", crop_size=32)
    assert again["model"] == report["model"]  # the same seeded pairs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random AdaIN generator exported as fp32, fp16 and int8 ONNX (calibrated on pairs)."""
    from artshift.export import VARIANTS, export_variants

    net = generator()
    folder = tmp_path_factory.mktemp("adain-onnx")
    paths = {variant: folder / f"{variant}.onnx" for variant in VARIANTS}
    rng = np.random.default_rng(0)
    calibration = {"photo": rng.uniform(-1, 1, (4, 3, 32, 32)), "style": rng.uniform(-1, 1, (4, 3, 32, 32)),
                   "alpha": np.linspace(1, 0, 4)}
    report = export_variants(net, paths, 18, calibration, {"method": "adain"}, parity_atol=1e-4, seed=0)
    return net, paths, report


def test_exports_one_onnx_file_of_photo_style_and_alpha_with_parity(exported):
    net, paths, report = exported
    model = onnx.load(str(paths["fp32"]))
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert list(inputs) == ["photo", "style", "alpha"] and inputs["alpha"] == []
    assert inputs["photo"][:2] == ["batch", 3] and inputs["style"][:2] == ["batch", 3]
    assert all(isinstance(d, str) for d in inputs["photo"][2:] + inputs["style"][2:])  # dynamic sides
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[METADATA_KEY] == "photo_and_style" and meta["method"] == "adain"
    assert meta["size_multiple"] == "1" and "style" in model.doc_string  # the graph pads the photo itself
    assert report["fp32"]["max_abs_diff"] <= 1e-4  # parity_inputs: two sizes, styles of other sizes, alpha 1 and 0.5
    assert 0 < report["fp16"]["mean_abs_diff"] < 0.005 and 0 < report["int8"]["mean_abs_diff"] < 0.1
    assert {p.key: p.value for p in onnx.load(str(paths["int8"])).metadata_props}["precision"] == "int8"
    assert REGISTERED_NAMES[GeneratorInput.PHOTO_AND_STYLE] == "artshift-adain"


def test_the_inference_runner_takes_a_photo_a_style_and_alpha(exported):
    from artshift.inference import StyleTransfer, Stylizer, open_generator

    net, paths, _ = exported
    runner = open_generator(paths["fp32"], providers=["CPUExecutionProvider"])
    assert isinstance(runner, StyleTransfer)
    rng = np.random.default_rng(2)
    photo = rng.uniform(-1, 1, (1, 3, 37, 50)).astype(np.float32)  # the graph pads to 40 × 56, crops back
    style = rng.uniform(-1, 1, (1, 3, 29, 61)).astype(np.float32)
    out = runner.run_array(photo, style, alpha=0.7)
    padded = np.pad(photo, ((0, 0), (0, 0), (0, 3), (0, 6)), mode="reflect")
    with torch.no_grad():
        expected = net(torch.from_numpy(padded), torch.from_numpy(style), 0.7)[..., :37, :50].numpy()
    assert out.shape == photo.shape and np.abs(out - expected).max() <= 1e-4
    image = runner.stylize(Image.new("RGB", (45, 30), (200, 30, 30)), Image.new("RGB", (20, 20), (0, 0, 255)))
    assert image.size == (45, 30)
    red = np.asarray(Image.new("RGB", (45, 30), (200, 30, 30)))
    pixels = runner.stylize(red, Image.new("RGB", (20, 20), (0, 0, 255)))
    assert isinstance(pixels, np.ndarray) and np.array_equal(pixels, np.asarray(image))  # an array in, an array out
    with pytest.raises(ArtShiftError, match="alpha must be in"):
        runner.run_array(photo, style, alpha=1.5)
    with pytest.raises(ArtShiftError):
        Stylizer(paths["fp32"])


def test_onnx_variants_are_scored_with_style_distance(exported, tmp_path):
    from artshift.evaluation import score_onnx_models, style_network

    net, paths, _ = exported
    data = write_palettes(tmp_path)
    extractor = PixelStatistics()
    cfg = EvaluateParams(batch_size=4, kid_subsets=5, kid_subset_size=4)
    scores = score_onnx_models({"fp32": paths["fp32"], "int8": paths["int8"]}, data, extractor, cfg, 0,
                               tmp_path / "cache", 32, style_network(net))
    assert all({"style_distance", "content", "kid_mean"} <= set(values) for values in scores.values())


def test_example_inputs_pair_photos_with_paintings(tmp_path):
    from artshift.export import example_inputs, input_example

    data = write_palettes(tmp_path)
    inputs = example_inputs(generator(), data / "train" / "photos", 3, seed=0, crop_size=24,
                            paintings_dir=data / "train" / "paintings")
    assert {k: v.shape for k, v in inputs.items()} == {"photo": (3, 3, 24, 24), "style": (3, 3, 24, 24),
                                                       "alpha": (3,)}
    assert inputs["alpha"].tolist() == [1.0, 0.5, 0.0]
    example = input_example(inputs, GeneratorInput.PHOTO_AND_STYLE, side=16)  # the MLflow input example
    assert {k: v.shape for k, v in example.items()} == {"photo": (1, 3, 16, 16), "style": (1, 3, 16, 16), "alpha": ()}
    assert float(example["alpha"]) == 1.0


def test_registered_as_artshift_adain_and_pyfunc_takes_photo_style_alpha(exported, tmp_path, monkeypatch):
    import mlflow

    from artshift import registry, tracking
    from artshift.export import input_example

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    _, paths, _ = exported
    rng = np.random.default_rng(1)
    pairs = {"photo": rng.uniform(-1, 1, (2, 3, 40, 40)).astype(np.float32),
             "style": rng.uniform(-1, 1, (2, 3, 40, 40)).astype(np.float32), "alpha": np.array([1.0, 0.0], np.float32)}
    eval_report = {"feature_extractor": "pixels", "model": {"kid_mean": 0.1, "style_distance": 2.0}}
    with tracking.start_model_run({}) as run:
        tags = registry.version_tags(run.run_id, "adain", "0" * 16, eval_report)
        example = input_example(pairs, GeneratorInput.PHOTO_AND_STYLE)
        version = registry.log_and_register(run, paths["fp32"], example, GeneratorInput.PHOTO_AND_STYLE, tags)
    assert registry.client().get_model_version("artshift-adain", version).tags["method"] == "adain"
    model = mlflow.pyfunc.load_model(f"models:/artshift-adain/{version}")
    photo = rng.uniform(-1, 1, (1, 3, 36, 52)).astype(np.float32)
    out = model.predict({"photo": photo, "style": pairs["style"][:1], "alpha": np.array(0.5, np.float32)})
    assert next(iter(out.values())).shape == photo.shape
