"""Bad images through the one loader (artshift.images) that preprocess, stylize and serve share:
each is a valid RGB image or one ImageError line, never another exception, a warning or noise on
stderr; in a folder, each bad file is a skip line (stylize) or a skipped.csv row (preprocess)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from artshift.cli import main as cli_main
from artshift.data.prepare import prepare_dataset
from artshift.errors import ImageError
from artshift.images import DECODE_FORMATS, decode_rgb, load_rgb

RNG = np.random.default_rng(0)
NOISE = Image.fromarray(RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A 60-byte PNG claiming any size: a decompression bomb, as far as its header goes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return encoded(NOISE, "JPEG", exif=exif)


def animated_gif() -> bytes:
    frames = [Image.new("P", (12, 10), i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def palette_with_transparency() -> bytes:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    return encoded(image, "PNG", transparency=1)


SEEDS = {fmt: encoded(NOISE, fmt) for fmt in DECODE_FORMATS}

# name: (file bytes, the (width, height) decoded, or a regex of the one-line error)
CASES = {
    "truncated.jpg": (SEEDS["JPEG"][: len(SEEDS["JPEG"]) // 2], "truncated"),
    "truncated.png": (SEEDS["PNG"][: len(SEEDS["PNG"]) // 2], "truncated"),
    "zero.png": (b"", "empty file"),
    "random.jpg": (RNG.integers(0, 256, 3000, dtype=np.uint8).tobytes(), "not a supported image"),
    "text.png": (b"this is a text file, not a picture\n" * 20, "not a supported image"),
    "one.png": (encoded(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), (1, 1)),
    "bomb.png": (png_header(20_000, 20_000), r"image too large .*decompression bomb"),
    "deep.png": (encoded(Image.fromarray(RNG.integers(0, 65536, (6, 5), dtype=np.uint16)), "PNG"), (5, 6)),
    "cmyk.jpg": (encoded(NOISE.convert("CMYK"), "JPEG"), (32, 24)),
    "palette.png": (palette_with_transparency(), (8, 8)),
    "animated.gif": (animated_gif(), (12, 10)),
    "rotated.jpg": (exif_rotated(), (24, 32)),  # stored 32x24, shown upright
}


@contextlib.contextmanager
def quiet_decoding():
    """Fail when decoding warns or writes to stderr (a CLI user would see extra lines)."""
    stderr = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
        warnings.simplefilter("always")
        yield
    assert not caught, [str(w.message) for w in caught]
    assert stderr.getvalue() == ""


def decoded_or_error(data: bytes, name: str = "upload") -> tuple[int, int] | str:
    """Decode ``data`` as serve does and from a file as preprocess and stylize do: both agree on
    an RGB image or on one ImageError line naming the input; nothing else may escape."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, name)
        path.write_bytes(data)
        outcomes = []
        for load in (lambda: decode_rgb(data, name), lambda: load_rgb(path)):
            try:
                with quiet_decoding():
                    image = load()
                assert image.mode == "RGB" and min(image.size) >= 1
                outcomes.append(image.size)
            except ImageError as exc:
                message = str(exc)
                assert "\n" not in message and message.startswith((f"{name}: ", f"{path}: ")), message
                outcomes.append(message.split(": ", 1)[1])
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_kind_of_bad_image_is_an_image_or_one_line(name):
    """Images: truncated, empty, random, text, 1x1, 20000x20000, 16-bit, CMYK, palette+alpha, animated, EXIF"""
    data, expected = CASES[name]
    outcome = decoded_or_error(data, name)
    if isinstance(expected, tuple):
        assert outcome == expected
    else:
        assert isinstance(outcome, str) and re.search(expected, outcome), outcome


# Each example is a trial of the table (the ``fault`` recorder is shared by the examples of one test).
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_an_image_or_one_line(fault, data):
    """Images: random bytes (hypothesis) through decode_rgb and load_rgb"""
    assert isinstance(decoded_or_error(data), tuple | str)  # an image's size or an error line, both loaders agreeing
    fault.trial(survived=True)


@st.composite
def damaged(draw) -> bytes:
    """A valid file of each format with bytes overwritten, inserted or cut off."""
    data = bytearray(SEEDS[draw(st.sampled_from(DECODE_FORMATS))])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["set", "insert", "cut"]))
        if edit == "set":
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif at > 0:
            del data[at:]
    return bytes(data)


@FUZZ
@given(damaged())
def test_damaged_files_of_every_format_are_an_image_or_one_line(fault, data):
    """Images: damaged PNG/JPEG/BMP/TIFF/WebP/GIF files (hypothesis) through decode_rgb and load_rgb"""
    assert isinstance(decoded_or_error(data), tuple | str)  # an image's size or an error line, both loaders agreeing
    fault.trial(survived=True)


def _messy_folder(folder: Path) -> set[str]:
    """Every case of CASES plus a link loop, a broken link and an unreadable subfolder in ``folder``;
    returns the names that cannot be used."""
    folder.mkdir(parents=True)
    for name, (data, _) in CASES.items():
        (folder / name).write_bytes(data)
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "dangling.png").symlink_to("nowhere.png")
    return {name for name, (_, expected) in CASES.items() if isinstance(expected, str)} | {"loop.jpg", "dangling.png"}


def test_a_messy_folder_through_stylize(tmp_path, tiny_onnx, capsys):
    """Images: a folder of every bad kind, a link loop and a broken link given to artshift stylize"""
    bad = _messy_folder(tmp_path / "in")
    out = tmp_path / "out"
    code = cli_main(["stylize", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_onnx)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    skipped = {Path(line.split(": ")[1]).name for line in err.splitlines() if line.startswith("skip: ")}
    assert skipped == bad
    assert sorted(p.name for p in out.iterdir()) == sorted(set(CASES) - bad)  # nothing else, no temp files
    for name in set(CASES) - bad:
        assert load_rgb(out / name).size == CASES[name][1]


def test_a_messy_folder_through_preprocess(tmp_path):
    """Images: a raw folder of every bad kind, a link loop and a broken link given to preprocess"""
    raw = tmp_path / "raw"
    bad = _messy_folder(raw / "photos")
    (raw / "paintings").mkdir()
    for i in range(2):
        (raw / "paintings" / f"p{i}.png").write_bytes(encoded(Image.new("RGB", (8, 8), (i, 50, 90)), "PNG"))
    summary = prepare_dataset(raw, tmp_path / "processed", load_size=8, test_fraction=0.5, min_size=1, seed=0)
    skipped = pd.read_csv(tmp_path / "processed" / "skipped.csv")
    assert {Path(source).name for source in skipped["source"]} == bad
    assert skipped["reason"].notna().all() and summary["n_skipped"] == len(bad)


def test_an_unreadable_subfolder_is_a_skip_with_its_reason(tmp_path, tiny_onnx, capsys):
    """Images: a subfolder without read permission"""
    if os.geteuid() == 0:
        pytest.skip("running as root: a folder without permissions can still be read")
    locked = tmp_path / "in" / "locked"
    locked.mkdir(parents=True)
    (tmp_path / "in" / "ok.png").write_bytes(SEEDS["PNG"])
    locked.chmod(0)
    try:
        code = cli_main(["stylize", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(tiny_onnx)])
        assert code == 2 and f"skip: {locked}: cannot read folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)
