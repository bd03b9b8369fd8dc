import os

import pytest
import torch

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("ARTSHIFT_NO_PROGRESS", "1")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A small random generator exported to ONNX: fast enough for CLI tests."""
    from artshift.export import export_generator
    from artshift.models.networks import ResnetGenerator, init_weights

    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=8, n_blocks=1)
    init_weights(generator, gain=0.2)
    path = tmp_path_factory.mktemp("model") / "generator.onnx"
    export_generator(generator, path, opset=18)
    return path
