import numpy as np
import onnx
import pytest
import torch

from artshift.export import export_generator, parity
from artshift.inference import Stylizer
from artshift.models.networks import ResnetGenerator, init_weights


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=2)
    init_weights(generator, gain=0.2)  # large weights so outputs are not all ≈ 0
    path = tmp_path_factory.mktemp("onnx") / "g.onnx"
    export_generator(generator, path, opset=18, metadata={"run_id": "abc", "method": "cut"})
    return generator.eval(), path


def test_single_file_with_dynamic_axes_and_metadata(exported):
    _, path = exported
    assert [p.name for p in path.parent.iterdir()] == ["g.onnx"]  # no external-data sidecar
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims][:2] == ["batch", 3]
    assert all(d.dim_param for d in (dims[2], dims[3]))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["run_id"] == "abc" and meta["size_multiple"] == "4"


def test_parity_with_pytorch_on_two_sizes(exported):
    generator, path = exported
    assert parity(generator, path, [(64, 96), (40, 32)]) <= 1e-4


def test_stylizer_pads_to_multiple_and_crops_back(exported):
    generator, path = exported
    stylizer = Stylizer(path, providers=["CPUExecutionProvider"])
    assert stylizer.provider == "CPUExecutionProvider"
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 3, 37, 50)).astype(np.float32)
    out = stylizer.run_array(x)
    assert out.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 2)), mode="reflect")  # up to 40 × 52
    with torch.no_grad():
        reference = generator(torch.from_numpy(padded))[..., :37, :50]
    assert np.abs(out - reference.numpy()).max() <= 1e-4


def test_stylizer_rejects_missing_and_broken_models(tmp_path):
    from artshift.errors import ArtShiftError

    with pytest.raises(ArtShiftError, match="not found"):
        Stylizer(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ArtShiftError, match="not a loadable ONNX model"):
        Stylizer(broken)
