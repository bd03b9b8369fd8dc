import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("ARTSHIFT_NO_PROGRESS", "1")
torch.set_num_threads(2)


def export_random_generator(folder, ngf: int, antialias: bool = False):
    """A seeded random one-block ResnetGenerator of width ``ngf``, exported to ``folder/generator.onnx``."""
    from artshift.export import export_generator
    from artshift.models.networks import ResnetGenerator, init_weights

    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=ngf, n_blocks=1, antialias=antialias)
    init_weights(generator, gain=0.2)
    path = folder / "generator.onnx"
    export_generator(generator, path, opset=18)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A small random generator exported to ONNX: fast enough for CLI tests."""
    return export_random_generator(tmp_path_factory.mktemp("model"), ngf=8)


def random_adain(ngf: int = 8, seed: int = 0):
    """A random AdaIN generator with the random VGG and a Kaiming-initialised decoder (outputs
    that use the whole [-1, 1] range), in eval mode."""
    from artshift.models.adain import AdaINGenerator
    from artshift.models.vgg import random_vgg_state_dict

    torch.manual_seed(seed)
    net = AdaINGenerator(ngf=ngf)
    for conv in (m for m in net.decoder.modules() if isinstance(m, torch.nn.Conv2d)):
        torch.nn.init.kaiming_normal_(conv.weight)
    net.encoder.load_weights(random_vgg_state_dict(0), "test")
    return net.eval()


@pytest.fixture(scope="session")
def tiny_adain(tmp_path_factory):
    """:func:`random_adain` exported to ONNX (inputs photo, style, alpha): for CLI, service and page tests."""
    from artshift.export import export_generator

    path = tmp_path_factory.mktemp("model") / "adain.onnx"
    export_generator(random_adain(), path, opset=18, metadata={"method": "adain"})
    return path


@pytest.fixture(scope="session")
def tiny_dcgan(tmp_path_factory):
    """A small random DCGAN generator (z_dim 8, 16 px paintings) in eval mode, and its ONNX file."""
    from artshift.export import export_generator
    from artshift.models.networks import DCGANGenerator, init_weights

    torch.manual_seed(0)
    generator = DCGANGenerator(z_dim=8, ngf=8, image_size=16)
    init_weights(generator, gain=0.2)
    generator(torch.randn(8, 8))  # one train-mode pass so batch norm has running statistics
    path = tmp_path_factory.mktemp("model") / "dcgan.onnx"
    export_generator(generator.eval(), path, opset=18, metadata={"method": "dcgan"})
    return generator, path


def write_processed(root, per_folder: int, size: int = 32):
    """A processed data folder (train/test × photos/paintings) of noisy dark photos and bright
    paintings, laid out as the preprocess stage writes it; returns its path."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for domain, base in (("photos", 65), ("paintings", 185)):
            folder = root / "processed" / split / domain
            folder.mkdir(parents=True)
            for i in range(per_folder):
                pixels = np.clip(base + rng.normal(0, 35, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{split}{domain}{i}.png")
    return root / "processed"
