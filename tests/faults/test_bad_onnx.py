"""Bad ONNX models and inputs: a file that is not ONNX, a model whose input has the wrong rank,
channels or dtype, and input arrays of the wrong dtype. The Stylizer/Sampler refuse bad models
with one line when they open them (the CLI: exit 2); arrays of any dtype are converted."""

from __future__ import annotations

import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from artshift.cli import main as cli_main
from artshift.errors import ArtShiftError
from artshift.generator_io import METADATA_KEY
from artshift.inference import Sampler, Stylizer


def identity_model(path, shape, dtype=TensorProto.FLOAT, takes="photo", inputs=1):
    """An ONNX model passing its first input through, declared as an ArtShift generator of ``takes``."""
    names = [f"x{i}" for i in range(inputs)]
    graph = helper.make_graph([helper.make_node("Identity", [names[0]], ["y"])], "g",
                              [helper.make_tensor_value_info(name, dtype, shape) for name in names],
                              [helper.make_tensor_value_info("y", dtype, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: takes})
    onnx.save_model(model, str(path))
    return path


def not_onnx(tmp_path, kind: str):
    path = tmp_path / f"{kind}.onnx"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model.onnx", b"x")
    else:
        contents = {"empty": b"", "text": b"a model\n" * 10, "random": np.arange(997, dtype=np.uint8).tobytes()}
        path.write_bytes(contents[kind])
    return path


@pytest.mark.parametrize("kind", ["empty", "text", "random", "zip"])
def test_a_file_that_is_not_onnx_is_one_line(tmp_path, kind):
    """ONNX: a model file that is not ONNX"""
    with pytest.raises(ArtShiftError, match="not a loadable ONNX model") as excinfo:
        Stylizer(not_onnx(tmp_path, kind))
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("shape", "dtype", "takes", "inputs"), [
    (["N", 3, "H"], TensorProto.FLOAT, "photo", 1),
    (["N", 3, "H", "W", 1], TensorProto.FLOAT, "photo", 1),
    (["N", 4, "H", "W"], TensorProto.FLOAT, "photo", 1),
    (["N", 3, "H", "W"], TensorProto.INT64, "photo", 1),
    (["N", 3, "H", "W"], TensorProto.FLOAT16, "photo", 1),
    (["N", 3, "H", "W"], TensorProto.FLOAT, "photo", 2),
    (["N", 8, 1, 1], TensorProto.FLOAT, "noise", 1),
    (["N", 8], TensorProto.UINT8, "noise", 1),
], ids=["rank3", "rank5", "4channels", "int64", "float16", "2inputs", "noise-rank4", "noise-uint8"])
def test_a_model_with_the_wrong_input_is_refused_when_opened(tmp_path, shape, dtype, takes, inputs):
    """ONNX: a model with the wrong input rank, channels, dtype or count"""
    path = identity_model(tmp_path / "m.onnx", shape, dtype, takes, inputs)
    with pytest.raises(ArtShiftError, match=f"a {takes} generator must take one float tensor") as excinfo:
        (Stylizer if takes == "photo" else Sampler)(path)
    assert "\n" not in str(excinfo.value)


def test_the_cli_says_one_line_for_a_wrong_model(tmp_path, capsys):
    """ONNX: artshift stylize with a model of the wrong input rank, or not ONNX at all"""
    photo = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (20, 20)).save(photo)
    for model in (identity_model(tmp_path / "rank3.onnx", ["N", 3, "H"]), not_onnx(tmp_path, "text")):
        code = cli_main(["stylize", str(photo), "--out", str(tmp_path / "out"), "--model", str(model)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err[-1].startswith(f"error: {model}: ") and "Traceback" not in "".join(err)
    assert not (tmp_path / "out").exists()  # the model is checked before the output folder is made


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64, np.float16])
def test_input_arrays_of_another_dtype_are_converted(tiny_onnx, dtype):
    """ONNX: input arrays of the wrong dtype"""
    stylizer = Stylizer(tiny_onnx)
    values = np.random.default_rng(0).integers(0, 2, (1, 3, 16, 20))  # exact in every dtype
    reference = stylizer.run_array(values.astype(np.float32))
    out = stylizer.run_array(values.astype(dtype))
    assert out.dtype == np.float32 and np.array_equal(out, reference)
