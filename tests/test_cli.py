import errno
import os
import tempfile
from pathlib import Path

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


def _stylize(*args: str, model) -> int:
    return main(["stylize", *map(str, args), "--model", str(model)])


def test_two_inputs_with_one_output_name_are_refused(tmp_path, tiny_onnx, capsys):
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "in" / folder / "pic.jpg")
    first, second, out = tmp_path / "in/a/pic.jpg", tmp_path / "in/b/pic.jpg", tmp_path / "o"
    assert _stylize(first, second, "--out", out, model=tiny_onnx) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {out / 'pic.jpg'}: both {first} and {second} would be written there; "
                   "stylize them into separate --out folders or rename one")
    assert not out.exists()
    Image.new("RGB", (20, 20)).save(tmp_path / "in/a/pic.png")  # --format jpeg maps pic.png onto pic.jpg too
    assert _stylize(tmp_path / "in/a", "--out", out, "--format", "jpeg", model=tiny_onnx) == 2
    assert "would be written there" in capsys.readouterr().err
    assert _stylize(first, first, str(first).replace("/a/", "/a/./"), "--out", out, model=tiny_onnx) == 0
    assert "stylized 1 image(s)" in capsys.readouterr().err  # the same file three times: one output


def test_an_output_that_is_an_input_is_refused_even_with_force(photos, tiny_onnx, capsys):
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    assert _stylize(photos, "--out", photos, "--force", model=tiny_onnx) == 2
    assert capsys.readouterr().err.strip() == (f"error: {photos / 'a.png'}: the output would overwrite the input "
                                               f"{photos / 'a.png'}; choose another --out")
    Image.new("RGB", (20, 20)).save(photos / "a.jpg")  # a.png → a.jpg, which is another input
    assert _stylize(photos / "a.png", photos / "a.jpg", "--out", photos, "--format", "jpeg", "--force",
                    model=tiny_onnx) == 2
    assert "overwrite the input" in capsys.readouterr().err
    assert all(path.read_bytes() == data for path, data in before.items())


def test_unreadable_folders_and_broken_links_are_reported(photos, tmp_path, tiny_onnx, capsys, monkeypatch):
    locked = photos / "locked"
    locked.mkdir()
    Image.new("RGB", (20, 20)).save(locked / "hidden.png")
    (photos / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (photos / "linked").symlink_to(photos / "sub")
    real_scandir = os.scandir

    def scandir(path="."):  # root reads any folder, so deny this one the way the kernel would
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "out"
    assert _stylize(photos, "--out", out, model=tiny_onnx) == 2
    err = capsys.readouterr().err
    assert f"skip: {locked}: cannot read folder (Permission denied)\n" in err
    assert f"skip: {photos / 'gone.jpg'}: broken link to {tmp_path / 'deleted.jpg'}\n" in err
    assert f"skip: {photos / 'linked'}: link to a folder, not followed" in err
    assert "stylized 2 image(s)" in err and "0 unreadable, 3 skipped" in err
    assert err.strip().splitlines()[-1].startswith("error: 3 input(s) skipped or unreadable")
    assert (out / "a.png").is_file() and (out / "sub" / "b.jpg").is_file()


def test_output_folder_that_is_a_file_or_read_only_is_exit_2_naming_it(photos, tmp_path, tiny_onnx, tiny_dcgan,
                                                                       capsys, monkeypatch):
    out = tmp_path / "out"
    out.write_text("a file, not a folder")
    assert _stylize(photos / "a.png", "--out", out, model=tiny_onnx) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {out}: cannot write to the output folder (it is a file)"
    out.unlink()
    out.mkdir()
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):  # as a read-only folder answers (root may write anywhere)
        if Path(dir) == out:
            raise PermissionError(errno.EACCES, "Permission denied", str(out / ".a.png.x1y2.tmp"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert _stylize(photos / "a.png", "--out", out, model=tiny_onnx) == 2
    assert capsys.readouterr().err.strip() == f"error: {out}: cannot write to the output folder (Permission denied)"
    assert main(["sample", "--n", "1", "--out", str(out), "--model", str(tiny_dcgan[1])]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_serve_flags_set_the_request_limits(capsys):
    from artshift.cli import build_parser, serve_limits
    from artshift.images import SizeLimits
    from artshift.limits import DEFAULT_LIMITS, Limits

    parse = build_parser().parse_args
    assert serve_limits(parse(["serve"])) == DEFAULT_LIMITS
    flags = ["--max-body-mb", "1", "--max-megapixels", "2.5", "--max-side", "300", "--max-aspect", "3",
             "--max-tiles", "4", "--time-budget", "5", "--header-timeout", "6", "--body-timeout", "7"]
    assert serve_limits(parse(["serve", *flags])) == Limits(
        max_body_bytes=2**20, size=SizeLimits(max_pixels=2_500_000, max_side=300, max_aspect=3.0), max_tiles=4,
        time_budget_s=5.0, header_timeout_s=6.0, body_timeout_s=7.0)
    for flag, value in (("--max-tiles", "0"), ("--time-budget", "-1"), ("--max-side", "big")):
        with pytest.raises(SystemExit) as exit_info:
            parse(["serve", flag, value])
        assert exit_info.value.code == 2 and f"argument {flag}: must be " in capsys.readouterr().err


def _parsers(parser, path=()):
    """Every (command path, parser) of the CLI, subcommands of subcommands included."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _option_help(text: str, option: str) -> str:
    """The help text of ``option`` in a --help output (its lines up to the next option)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(option + " ")
                 or line.lstrip().startswith(option + ","))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * 6) or line.lstrip().startswith("-"):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def test_every_help_shows_every_default_in_plain_text(monkeypatch, capsys):
    from artshift.cli import build_parser

    monkeypatch.setenv("COLUMNS", "200")
    checked = 0
    for path, parser in _parsers(build_parser()):
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "`" not in text, f"artshift {' '.join(path)} --help has reST backticks"
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and not action.required:
                described = _option_help(text, action.option_strings[-1])
                assert "default" in described, f"artshift {' '.join(path)} --help: no default for {described!r}"
                if "default" not in (action.help or ""):  # shown by the formatter: the real value
                    assert f"(default: {action.default})" in described
                checked += 1
    assert checked > 20


def test_top_help_and_version(capsys):
    import artshift

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert description.startswith("Repaint photos") and description.rstrip().endswith(".")
    assert "Exit codes: 0 ok, 2 bad input" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"artshift {artshift.__version__}"


# AdaIN models: a photo and a painting in, one output per (photo, painting) pair.

@pytest.fixture
def styles(tmp_path):
    """Three paintings of other sizes: two at the top, one in a subfolder (named nested-s3 in outputs)."""
    folder = tmp_path / "styles"
    (folder / "nested").mkdir(parents=True)
    Image.new("RGB", (30, 20), (250, 40, 40)).save(folder / "s1.png")
    Image.new("RGB", (24, 24), (30, 40, 250)).save(folder / "s2.jpg")
    Image.new("RGB", (40, 30), (40, 240, 60)).save(folder / "nested" / "s3.png")
    return folder


def test_a_style_folder_gives_one_output_per_photo_and_painting(photos, styles, tmp_path, tiny_adain, capsys):
    from artshift.inference import StyleTransfer

    out = tmp_path / "out"
    assert _stylize(photos, "--style", styles, "--alpha", "0.8", "--out", out, model=tiny_adain) == 0
    assert "stylized 6 image(s)" in capsys.readouterr().err
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == ["a__nested-s3.png", "a__s1.png", "a__s2.png",
                     "sub/b__nested-s3.jpg", "sub/b__s1.jpg", "sub/b__s2.jpg"]
    assert Image.open(out / "a__s2.png").size == (61, 37) and Image.open(out / "sub/b__s1.jpg").size == (40, 50)
    model = StyleTransfer(tiny_adain)
    expected = model.stylize(Image.open(photos / "a.png"), Image.open(styles / "s1.png").convert("RGB"), 0.8)
    assert np.array_equal(np.asarray(Image.open(out / "a__s1.png")), np.asarray(expected))
    red, blue = (np.asarray(Image.open(out / f"a__{s}.png"), dtype=float) for s in ("s1", "s2"))
    assert red[..., 0].mean() - red[..., 2].mean() > blue[..., 0].mean() - blue[..., 2].mean()
    single = tmp_path / "single"  # one painting: the same pair naming
    assert _stylize(photos / "a.png", "--style", styles / "s2.jpg", "--out", single, model=tiny_adain) == 0
    assert [p.name for p in single.iterdir()] == ["a__s2.png"]


def test_style_and_alpha_must_fit_the_model(photos, styles, tmp_path, tiny_onnx, tiny_adain, capsys):
    out = tmp_path / "out"
    assert _stylize(photos, "--style", styles, "--out", out, model=tiny_onnx) == 2
    assert capsys.readouterr().err.strip() == (f"error: --style: {tiny_onnx} repaints in the one style it learned and "
                                               "takes no style image; drop --style (or use an AdaIN model)")
    assert _stylize(photos, "--alpha", "0.5", "--out", out, model=tiny_onnx) == 2
    assert capsys.readouterr().err.strip().startswith("error: --alpha: ")
    assert _stylize(photos, "--out", out, model=tiny_adain) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tiny_adain} paints photos in the style of a painting you pick "
                                               "(AdaIN): give one with --style PAINTING (a file, folder or pattern)")
    for alpha in ("1.5", "-0.1", "nan"):
        assert _stylize(photos, "--style", styles, "--alpha", alpha, "--out", out, model=tiny_adain) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --alpha: must be in [0, 1]") and "\n" not in err
    assert not out.exists()


def test_pairs_that_clash_or_overwrite_a_style_are_refused(photos, styles, tmp_path, tiny_adain, capsys):
    out = tmp_path / "out"
    Image.new("RGB", (20, 20)).save(styles / "s1.jpg")  # s1.png and s1.jpg: both a__s1.png
    assert _stylize(photos / "a.png", "--style", styles, "--out", out, model=tiny_adain) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {out / 'a__s1.png'}: both {photos / 'a.png'} with style {styles / 's1.jpg'} and "
        f"{photos / 'a.png'} with style {styles / 's1.png'} would be written there; "
        "stylize them into separate --out folders or rename one")
    out.mkdir()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(out / "a__s2.png")  # a style that is also an output
    before = (out / "a__s2.png").read_bytes()
    code = _stylize(photos / "a.png", "--style", styles / "s2.jpg", "--style", out / "a__s2.png", "--out", out,
                    "--force", model=tiny_adain)
    assert code == 2 and "the output would overwrite the input" in capsys.readouterr().err
    assert (out / "a__s2.png").read_bytes() == before


def test_existing_pairs_are_kept_and_bad_inputs_reported(photos, styles, tmp_path, tiny_adain, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a__s1.png").write_bytes(b"keep me")
    (styles / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.new("RGB", (32, 24), (90, 90, 90)).save(photos / "small.png")
    code = _stylize(photos / "a.png", photos / "small.png", "--style", styles, "--tile", "48", "--out", out,
                    model=tiny_adain)
    err = capsys.readouterr().err
    assert code == 2
    assert f"skip {photos / 'a.png'} with style {styles / 's1.png'}: {out / 'a__s1.png'} exists" in err
    assert f"skip: {styles / 'broken.png'}: unreadable style image (" in err
    assert (f"skip: {photos / 'a.png'}: image too large for one AdaIN pass (61x37, sides up to 48 px); AdaIN's "
            "statistics are global, so photos are not tiled: scale it down or raise --tile") in err
    assert "stylized 3 image(s)" in err and "1 existing, 0 unreadable, 1 too large, 1 skipped" in err
    assert (out / "a__s1.png").read_bytes() == b"keep me"
    assert sorted(p.name for p in out.iterdir()) == ["a__s1.png", "small__nested-s3.png", "small__s1.png",
                                                     "small__s2.png"]
    assert _stylize(photos / "a.png", "--style", styles / "broken.png", "--out", out, model=tiny_adain) == 2
    assert "error: --style: no usable style image in " in capsys.readouterr().err
