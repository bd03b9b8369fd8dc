"""The public Python API: ``from artshift import Stylizer, Sampler``."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import artshift
from artshift.cli import main
from artshift.errors import ArtShiftError


def _photo(width: int = 40, height: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def stylizer(tiny_onnx):
    return artshift.Stylizer(tiny_onnx, providers=["CPUExecutionProvider"])


def test_import_artshift_stays_light():
    code = ("import sys, artshift; heavy = [m for m in ('torch', 'onnxruntime', 'numpy', 'PIL', 'mlflow') "
            "if m in sys.modules]; print(heavy, artshift.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[] ") and out.split()[-1] != "0+unknown"
    from artshift import inference

    assert artshift.Stylizer is inference.Stylizer and artshift.Sampler is inference.Sampler
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        artshift.Nope  # noqa: B018


def test_stylize_gives_back_the_kind_it_got(stylizer, tmp_path):
    pixels = _photo()
    untouched = pixels.copy()
    from_array = stylizer.stylize(pixels)
    assert isinstance(from_array, np.ndarray) and from_array.shape == (28, 40, 3) and from_array.dtype == np.uint8
    assert np.array_equal(pixels, untouched)  # the caller's array is not repainted in place
    assert not np.array_equal(from_array, pixels)

    from_pil = stylizer.stylize(Image.fromarray(pixels))
    assert isinstance(from_pil, Image.Image) and from_pil.mode == "RGB" and from_pil.size == (40, 28)
    assert np.array_equal(np.asarray(from_pil), from_array)

    Image.fromarray(pixels).save(tmp_path / "photo.png")
    for path in (tmp_path / "photo.png", str(tmp_path / "photo.png")):
        assert np.array_equal(np.asarray(stylizer.stylize(path)), from_array)


def test_model_as_path_string_or_bytes(tiny_onnx, stylizer):
    pixels = _photo(seed=1)
    expected = stylizer.stylize(pixels)
    for model in (str(tiny_onnx), tiny_onnx.read_bytes()):
        other = artshift.Stylizer(model, providers=["CPUExecutionProvider"])
        assert np.array_equal(other.stylize(pixels), expected)
    assert artshift.Stylizer(tiny_onnx.read_bytes()).describe().endswith("bytes>")
    with pytest.raises(ArtShiftError, match="not a loadable ONNX model"):
        artshift.Stylizer(b"not a model")


def test_models_uri_goes_through_the_registry(tiny_onnx, monkeypatch):
    from artshift import registry
    from artshift.generator_io import ModelRef

    asked = []

    def fake_resolve(uri):
        asked.append(uri)
        return ModelRef(tiny_onnx, uri, "7", "f" * 32)

    monkeypatch.setattr(registry, "resolve_model", fake_resolve)
    loaded = artshift.Stylizer("models:/artshift@champion", providers=["CPUExecutionProvider"])
    assert asked == ["models:/artshift@champion"]
    assert loaded.describe() == f"models:/artshift@champion (version 7, run {'f' * 32})"


def test_exif_orientation_applied_like_the_cli(stylizer, tmp_path):
    pixels = _photo(40, 28, seed=2)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    Image.fromarray(pixels).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "turned.jpg") as opened:
        from_pil = stylizer.stylize(opened)
    assert from_pil.size == (28, 40)  # upright, as a viewer shows it
    from_path = stylizer.stylize(tmp_path / "turned.jpg")
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))
    assert main(["stylize", str(tmp_path / "turned.jpg"), "--out", str(tmp_path / "out"), "--format", "png",
                 "--model", str(stylizer.ref.path)]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "turned.png")), np.asarray(from_pil))


def test_any_pil_mode_and_batches_of_mixed_kinds(stylizer):
    pixels = _photo(seed=3)
    rgba = Image.fromarray(np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)]), "RGBA")
    results = stylizer.stylize_batch([pixels, rgba, Image.fromarray(pixels).convert("L")])
    assert isinstance(results[0], np.ndarray) and isinstance(results[1], Image.Image)
    assert np.abs(results[0].astype(int) - np.asarray(results[1], dtype=int)).max() <= 1
    assert results[2].size == (40, 28) and results[2].mode == "RGB"


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32),
                                 np.zeros((8, 8, 4), np.uint8)])
def test_bad_arrays_are_one_clear_error(stylizer, bad):
    with pytest.raises(ArtShiftError, match=r"expected an \(H, W, 3\) uint8 RGB array"):
        stylizer.stylize(bad)


def test_bad_inputs_are_one_clear_error(stylizer, tmp_path):
    with pytest.raises(ArtShiftError, match="expected a PIL image"):
        stylizer.stylize(b"raw bytes are not an image here")
    with pytest.raises(ArtShiftError, match="cannot read file"):
        stylizer.stylize(tmp_path / "missing.png")


def test_sampler_api(tiny_dcgan, tiny_onnx):
    sampler = artshift.Sampler(tiny_dcgan[1].read_bytes(), providers=["CPUExecutionProvider"])
    pixels = sampler.sample_pixels(5, seed=4, batch=2)
    assert pixels.shape == (5, 16, 16, 3) and pixels.dtype == np.uint8
    images = list(sampler.sample(5, seed=4))
    assert all(isinstance(image, Image.Image) and image.size == (16, 16) for image in images)
    assert np.array_equal(np.stack([np.asarray(image) for image in images]), pixels)
    assert not np.array_equal(sampler.sample_pixels(5, seed=5), pixels)
    with pytest.raises(ArtShiftError, match="count: must be >= 1"):
        sampler.sample_pixels(0)
    with pytest.raises(ArtShiftError, match="repaints photos"):
        artshift.Sampler(tiny_onnx)


def test_a_cpu_only_onnxruntime_is_not_asked_for_cuda(tiny_onnx, monkeypatch):
    import warnings

    import onnxruntime
    from onnxruntime.capi import _pybind_state

    def cpu_build():
        return ["AzureExecutionProvider", "CPUExecutionProvider"]  # what the onnxruntime wheel lists

    monkeypatch.setattr(onnxruntime, "get_available_providers", cpu_build)
    monkeypatch.setattr(_pybind_state, "get_available_providers", cpu_build)  # what InferenceSession checks
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # onnxruntime warns when asked for a provider it lacks
        stylizer = artshift.Stylizer(tiny_onnx)
    assert stylizer.provider == "CPUExecutionProvider"
