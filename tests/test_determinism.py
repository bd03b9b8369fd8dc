"""Outputs that DVC hashes are byte-for-byte the same when their contents are the same."""

import torch

from artshift import checkpoint


def test_equal_checkpoints_are_equal_bytes(tmp_path):
    record = {"kind": "generator", "state_dict": {"w": torch.arange(6.0)}}
    checkpoint.save(record, tmp_path / "a.pt")
    checkpoint.save(record, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(checkpoint.load(tmp_path / "b.pt", "generator")["state_dict"]["w"], torch.arange(6.0))


def test_dataset_hash_changes_with_the_processed_data_not_with_a_rebuild(tmp_path):
    import numpy as np
    from PIL import Image

    from artshift.data.layout import PROCESSED_MANIFEST
    from artshift.data.prepare import prepare_dataset
    from artshift.files import sha256_file
    from artshift.train import dataset_hash

    rng = np.random.default_rng(0)
    for domain in ("photos", "paintings"):
        (tmp_path / "raw" / domain).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "raw" / domain / f"{i}.png")
    hashes = {}
    for name, size in (("a", 32), ("again", 32), ("small", 16)):
        prepare_dataset(tmp_path / "raw", tmp_path / name, size, 0.3, 16, seed=0)
        hashes[name] = dataset_hash(tmp_path / name)
    assert hashes["a"] == hashes["again"] != hashes["small"]
    # The manifest lists the raw images, so it cannot tell the two sizes apart.
    assert sha256_file(tmp_path / "a" / PROCESSED_MANIFEST) == sha256_file(tmp_path / "small" / PROCESSED_MANIFEST)


def test_equal_generators_export_to_equal_onnx_bytes(tmp_path):
    from pathlib import Path

    import artshift
    from artshift.export import export_generator
    from artshift.models.networks import ResnetGenerator

    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=4, n_blocks=1)
    for name in ("a.onnx", "b.onnx"):
        export_generator(generator, tmp_path / name, opset=18, metadata={"method": "cut"})
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    # Nor do they depend on where the project is: no source path of this checkout in the file.
    assert str(Path(artshift.__file__).parent).encode() not in (tmp_path / "a.onnx").read_bytes()
