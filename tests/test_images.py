import io
import re
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from artshift.errors import ImageError, ImageTooLarge
from artshift.images import SizeLimits, decode_rgb, load_rgb, resize_and_crop, save_image, to_image, to_rgb, to_tensor

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def saved(image: Image.Image, tmp_path, name: str, **options):
    path = tmp_path / name
    image.save(path, **options)
    return path


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims any size: Pillow reads the size before any pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def pixel(image: Image.Image, x: int = 0, y: int = 0) -> tuple:
    assert image.mode == "RGB"
    return image.getpixel((x, y))


def close(actual, expected, tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


# --- modes -------------------------------------------------------------------------------


def test_rgb_png_round_trips_exactly(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    image = load_rgb(saved(Image.fromarray(array), tmp_path, "a.png"))
    assert image.mode == "RGB" and image.size == (13, 9)
    assert np.array_equal(np.asarray(image), array)


def test_greyscale_l_becomes_grey_rgb(tmp_path):
    image = load_rgb(saved(Image.new("L", (4, 3), 77), tmp_path, "l.png"))
    assert pixel(image) == (77, 77, 77)


def test_la_is_composited_onto_white(tmp_path):
    source = Image.new("LA", (2, 1), (0, 0))
    source.putpixel((1, 0), (40, 255))
    image = load_rgb(saved(source, tmp_path, "la.png"))
    assert pixel(image, 0) == WHITE and pixel(image, 1) == (40, 40, 40)


def test_palette_keeps_its_colours(tmp_path):
    source = Image.new("RGB", (3, 1))
    for x, colour in enumerate((RED, GREEN, BLUE)):
        source.putpixel((x, 0), colour)
    path = saved(source.convert("P", palette=Image.Palette.ADAPTIVE, colors=3), tmp_path, "p.png")
    assert Image.open(path).mode == "P"
    image = load_rgb(path)
    assert [pixel(image, x) for x in range(3)] == [RED, GREEN, BLUE]


@pytest.mark.parametrize("suffix", ["png", "gif"])
def test_palette_transparency_becomes_white(tmp_path, suffix):
    source = Image.new("P", (2, 1), 0)
    source.putpalette([0, 0, 0, *RED] + [0] * 762)
    source.putpixel((1, 0), 1)
    path = saved(source, tmp_path, f"t.{suffix}", transparency=0)
    assert "transparency" in Image.open(path).info
    image = load_rgb(path)
    assert pixel(image, 0) == WHITE and pixel(image, 1) == RED


def test_rgba_transparent_pixel_becomes_white_and_partial_alpha_blends(tmp_path):
    source = Image.new("RGBA", (3, 1), (0, 0, 0, 0))
    source.putpixel((1, 0), (*RED, 255))
    source.putpixel((2, 0), (0, 0, 0, 128))
    image = load_rgb(saved(source, tmp_path, "rgba.png"))
    assert pixel(image, 0) == WHITE and pixel(image, 1) == RED
    assert close(pixel(image, 2), (127, 127, 127), 1)


@pytest.mark.parametrize("suffix", ["jpg", "tif"])
def test_cmyk_colour_round_trips(tmp_path, suffix):
    colour = (200, 40, 90)
    path = saved(Image.new("RGB", (16, 16), colour).convert("CMYK"), tmp_path, f"cmyk.{suffix}")
    assert Image.open(path).mode == "CMYK"
    assert close(pixel(load_rgb(path), 8, 8), colour, 8)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    gradient = np.linspace(0, 65535, 256).round().astype(np.uint16)
    path = saved(Image.fromarray(np.tile(gradient, (2, 1))), tmp_path, "g16.png")
    assert Image.open(path).mode == "I;16"
    row = np.asarray(load_rgb(path))[0, :, 0].astype(int)
    assert row[0] == 0 and row.max() == row[-1] == 255
    assert np.all(np.diff(row) >= 0) and len(set(row)) > 200
    assert abs(row[128] - 128) <= 1


def test_32_bit_integer_tiff_is_scaled(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.int32)
    path = saved(Image.fromarray(values), tmp_path, "i32.tif")
    assert Image.open(path).mode == "I"
    assert np.asarray(load_rgb(path))[0, :, 0].tolist() == [0, 4, 128, 255]


@pytest.mark.parametrize(("values", "expected"), [
    ([0, 100, 255], [0, 100, 255]),  # 8-bit data in a 32-bit container stays as it is
    ([-10, 0, 10], [0, 128, 255]),  # outside every nominal range: stretched
])
def test_32_bit_integer_range_choice(values, expected):
    image = Image.fromarray(np.array([values], dtype=np.int32))
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == expected


def test_float_image_in_unit_range_is_scaled(tmp_path):
    values = np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32)
    path = saved(Image.fromarray(values), tmp_path, "f.tif")
    assert Image.open(path).mode == "F"
    assert np.asarray(load_rgb(path))[0, :, 0].tolist() == [0, 128, 255, 0]


def test_one_bit_image_is_black_and_white(tmp_path):
    source = Image.new("1", (2, 1), 0)
    source.putpixel((1, 0), 1)
    image = load_rgb(saved(source, tmp_path, "bw.png"))
    assert pixel(image, 0) == (0, 0, 0) and pixel(image, 1) == WHITE


def test_in_memory_modes_are_converted():
    assert to_rgb(Image.new("La", (1, 1), (0, 0))).getpixel((0, 0)) == WHITE
    assert to_rgb(Image.new("RGBa", (1, 1), (*RED, 255))).getpixel((0, 0)) == RED
    assert close(to_rgb(Image.new("LAB", (1, 1), (128, 128, 128))).getpixel((0, 0)), (119, 119, 119), 2)
    assert close(to_rgb(Image.new("YCbCr", (1, 1), (76, 85, 255))).getpixel((0, 0)), RED, 2)
    rgb = Image.new("RGB", (1, 1))
    assert to_rgb(rgb) is rgb


def test_rgb_png_with_transparent_colour_becomes_white(tmp_path):
    source = Image.new("RGB", (2, 1), GREEN)
    source.putpixel((1, 0), RED)
    image = load_rgb(saved(source, tmp_path, "trns.png", transparency=GREEN))
    assert pixel(image, 0) == WHITE and pixel(image, 1) == RED


# --- orientation -------------------------------------------------------------------------


def test_exif_orientation_6_is_applied(tmp_path):
    source = Image.new("RGB", (40, 20), (128, 128, 128))
    source.paste(RED, (0, 0, 8, 8))  # marks the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = saved(source, tmp_path, "rotated.jpg", exif=exif.tobytes(), quality=95)
    image = load_rgb(path)
    assert image.size == (20, 40)
    assert close(pixel(image, 16, 3), RED, 30)  # stored top-left is now top-right
    assert close(pixel(image, 3, 3), (128, 128, 128), 30)


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_an_image_error(tmp_path, fmt):
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), fmt)
    path = tmp_path / "cut.img"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated") as info:
        load_rgb(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_text_file_named_jpg_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, not a picture\n")
    with pytest.raises(ImageError, match="not a supported image"):
        load_rgb(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_rgb(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="empty file"):
        decode_rgb(b"")
    with pytest.raises(ImageError, match="cannot read file"):
        load_rgb(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="cannot read file"):
        load_rgb(tmp_path)


def test_zero_size_image_is_refused():
    with pytest.raises(ImageError):
        decode_rgb(png_header(0, 5))


def test_unsupported_format_is_refused():
    with pytest.raises(ImageError, match="not a supported image"):
        decode_rgb(encoded(Image.new("RGB", (4, 4)), "PPM"), "a.ppm")


@pytest.mark.parametrize("side", [10_000, 30_000])  # Pillow warns at 100 MP and refuses 900 MP
def test_decompression_bomb_is_refused_before_decoding(side):
    filters = list(warnings.filters)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_rgb(png_header(side, side), "bomb.png")
    assert warnings.filters == filters


def test_explicit_pixel_limit():
    data = encoded(Image.new("RGB", (20, 20)), "PNG")
    with pytest.raises(ImageError, match="limit 399"):
        decode_rgb(data, limits=SizeLimits(max_pixels=399))
    assert decode_rgb(data, limits=SizeLimits(max_pixels=400)).size == (20, 20)


@pytest.mark.parametrize(("size", "needle"), [((100_000, 1), "side too long (100000x1, limit 8192 px)"),
                                              ((4000, 400), "too elongated (4000x400, aspect ratio 10.0, limit 8)")])
def test_side_and_aspect_limits_are_checked_before_decoding(size, needle):
    limits = SizeLimits(max_pixels=16_000_000, max_side=8192, max_aspect=8)
    with pytest.raises(ImageTooLarge, match=re.escape(f"upload: image {needle}")):
        decode_rgb(png_header(*size), "upload", limits)  # a header only: decoding would fail
    assert decode_rgb(encoded(Image.new("1", (800, 100)), "PNG"), "upload", limits).size == (800, 100)


def test_decode_rgb_names_the_upload_in_errors():
    assert decode_rgb(encoded(Image.new("RGB", (5, 4), RED), "WEBP")).size == (5, 4)
    with pytest.raises(ImageError, match="^upload.png: "):
        decode_rgb(b"GIF89a garbage", "upload.png")


# --- geometry and tensors ----------------------------------------------------------------


@pytest.mark.parametrize("size", [(300, 200), (200, 300)])
def test_resize_and_crop_keeps_the_centre(size):
    width, height = size
    image = Image.new("RGB", size, RED)
    image.paste(GREEN, ((width - 200) // 2, (height - 200) // 2, (width + 200) // 2, (height + 200) // 2))
    out = resize_and_crop(image, 64)
    assert out.size == (64, 64)
    # Edge pixels blend a little with their neighbours outside the square, as in resize-then-crop.
    assert all(close(pixel(out, x, y), GREEN, 20) for x in (0, 32, 63) for y in (0, 32, 63))
    assert all(close(pixel(out, x, y), GREEN, 1) for x in (2, 32, 61) for y in (2, 32, 61))


def test_resize_and_crop_upscales_small_images():
    assert resize_and_crop(Image.new("RGB", (20, 10)), 32).size == (32, 32)
    with pytest.raises(ValueError):
        resize_and_crop(Image.new("RGB", (20, 10)), 0)


def test_tensor_round_trip_is_exact_for_uint8():
    values = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    image = Image.fromarray(values.astype(np.uint8))
    tensor = to_tensor(image)
    assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
    assert tensor.min() == -1.0 and tensor.max() == 1.0
    assert np.array_equal(np.asarray(to_image(tensor)), np.asarray(image))


def test_to_image_clamps_and_checks_shape():
    assert to_image(torch.tensor([3.0, -3.0, 0.0]).view(3, 1, 1)).getpixel((0, 0)) == (255, 0, 128)
    with pytest.raises(ValueError):
        to_image(torch.zeros(1, 3, 4, 4))


def test_to_tensor_converts_other_modes():
    assert to_tensor(Image.new("RGBA", (2, 2), (0, 0, 0, 0))).eq(1.0).all()


# --- saving ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.webp", "sub/out.tiff"])
def test_save_image_writes_the_suffix_format_atomically(tmp_path, name):
    image = Image.new("RGB", (8, 6), (10, 200, 30))
    save_image(image, tmp_path / name)
    assert close(pixel(load_rgb(tmp_path / name), 4, 3), (10, 200, 30), 4)
    assert [p.name for p in (tmp_path / name).parent.iterdir()] == ["out" + (tmp_path / name).suffix]


def test_save_image_failure_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        save_image(Image.new("RGBA", (4, 4)), tmp_path / "bad.jpg")  # JPEG has no alpha
    with pytest.raises(ImageError, match="unknown image format"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "bad.xyz")
    assert list(tmp_path.iterdir()) == []


def test_save_image_explicit_format(tmp_path):
    save_image(Image.new("RGB", (4, 4)), tmp_path / "noext", format="PNG")
    assert Image.open(tmp_path / "noext").format == "PNG"
