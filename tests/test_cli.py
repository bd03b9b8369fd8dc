import numpy as np
import pytest
from PIL import Image

from artshift.cli import main


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (37, 61, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_stylize_folder_keeps_size_and_format(photos, tmp_path, tiny_onnx, capsys):
    out = tmp_path / "out"
    assert main(["stylize", str(photos), "--out", str(out), "--model", str(tiny_onnx)]) == 0
    err = capsys.readouterr().err
    assert "CPUExecutionProvider" in err and "stylized 2 image(s)" in err
    assert Image.open(out / "a.png").size == (61, 37)
    b = Image.open(out / "sub" / "b.jpg")
    assert b.size == (40, 50) and b.format == "JPEG"
    assert not (out / "notes.txt").exists()


def test_existing_outputs_kept_unless_force(photos, tmp_path, tiny_onnx, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    args = ["stylize", str(photos / "a.png"), "--out", str(out), "--model", str(tiny_onnx)]
    assert main(args) == 0
    assert (out / "a.png").read_bytes() == b"keep me"
    assert "use --force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    assert Image.open(out / "a.png").size == (61, 37)


def test_unreadable_inputs_are_reported_skipped_and_exit_2(photos, tmp_path, tiny_onnx, capsys):
    broken = photos / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    code = main(["stylize", str(photos / "a.png"), str(broken), "--out", str(out), "--model", str(tiny_onnx)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"skip: {broken}: " in err and err.strip().splitlines()[-1].startswith("error: 1 input(s)")
    assert (out / "a.png").is_file() and not (out / "broken.png").exists()


def test_missing_input_and_model_are_one_line_errors(tmp_path, tiny_onnx, capsys):
    assert main(["stylize", str(tmp_path / "nope.png"), "--out", str(tmp_path), "--model", str(tiny_onnx)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.png'}: no such file or folder"
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    assert main(["stylize", str(image), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "m.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_globs_format_and_batches(photos, tmp_path, tiny_onnx, capsys):
    for i in range(3):
        Image.new("RGB", (30, 20), (10 * i, 50, 90)).save(photos / f"same{i}.png")
    out = tmp_path / "out"
    code = main(["stylize", str(photos / "same*.png"), str(photos / "a.png"), "--out", str(out),
                 "--model", str(tiny_onnx), "--format", "jpeg", "--batch", "2"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "same0.jpg", "same1.jpg", "same2.jpg"]
    assert all(Image.open(p).format == "JPEG" for p in out.iterdir())
    assert Image.open(out / "same1.jpg").size == (30, 20)
    assert main(["stylize", str(photos / "nothing*.png"), "--out", str(out), "--model", str(tiny_onnx)]) == 2
    assert "matches no file" in capsys.readouterr().err


def test_batched_and_single_runs_agree(tiny_onnx):
    from artshift.inference import Stylizer

    stylizer = Stylizer(tiny_onnx, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    images = [Image.fromarray(rng.integers(0, 255, (24, 28, 3), dtype=np.uint8)) for _ in range(3)]
    batched = stylizer.stylize_batch(images)
    single = [stylizer.stylize(image) for image in images]
    for a, b in zip(batched, single):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1


def test_sample_draws_seeded_paintings(tmp_path, tiny_dcgan, capsys):
    out = tmp_path / "samples"
    assert main(["sample", "--n", "5", "--seed", "3", "--out", str(out), "--model", str(tiny_dcgan[1])]) == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"sample_seed3_{i:04d}.png" for i in range(5)]
    assert all(Image.open(f).size == (16, 16) for f in files)
    assert "drew 5 painting(s)" in capsys.readouterr().err
    again = tmp_path / "again"
    assert main(["sample", "--n", "2", "--seed", "3", "--out", str(again), "--model", str(tiny_dcgan[1])]) == 0
    assert np.array_equal(np.asarray(Image.open(again / "sample_seed3_0001.png")), np.asarray(Image.open(files[1])))


def test_sample_keeps_existing_outputs_and_refuses_wrong_models(tmp_path, tiny_onnx, tiny_dcgan, capsys):
    out = tmp_path / "samples"
    args = ["sample", "--n", "2", "--out", str(out), "--model", str(tiny_dcgan[1])]
    assert main(args) == 0
    before = (out / "sample_seed0_0000.png").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err.strip().endswith("exists (2 of 2 outputs do); use --force to overwrite")
    assert main([*args, "--force"]) == 0 and (out / "sample_seed0_0000.png").read_bytes() == before
    assert main(["sample", "--n", "0", "--out", str(out), "--model", str(tiny_dcgan[1])]) == 2
    assert main(["sample", "--out", str(out), "--model", str(tiny_onnx)]) == 2
    assert "repaints photos; use `artshift stylize`" in capsys.readouterr().err
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    assert main(["stylize", str(image), "--out", str(tmp_path / "o"), "--model", str(tiny_dcgan[1])]) == 2
    assert "paints from noise (DCGAN); use `artshift sample`" in capsys.readouterr().err


@pytest.mark.parametrize("batch", ["0", "-3", "two"])
def test_batch_below_one_is_refused_with_exit_2(photos, tmp_path, tiny_onnx, capsys, batch):
    with pytest.raises(SystemExit) as excinfo:
        main(["stylize", str(photos), "--out", str(tmp_path / "out"), "--model", str(tiny_onnx), "--batch", batch])
    assert excinfo.value.code == 2
    assert "argument --batch: must be" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
