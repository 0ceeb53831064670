"""Image handling: formats and modes to RGB, EXIF orientation, bad bytes, draft-mode downscale."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlimages.images import ImageError, ImageLimits, encode_jpeg, load_rgb


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise_jpeg(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def test_png_with_alpha_is_flattened_onto_white():
    image = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (10, 0, 20, 10))  # right half fully transparent
    rgb = load_rgb(encode(image, "PNG"))
    assert (rgb.mode, rgb.size) == ("RGB", (20, 10))
    assert rgb.getpixel((2, 5)) == (255, 0, 0) and rgb.getpixel((15, 5)) == (255, 255, 255)


def test_grayscale_becomes_three_equal_channels():
    gray = Image.linear_gradient("L").resize((32, 32))
    rgb = load_rgb(encode(gray, "JPEG", quality=95))
    pixels = np.asarray(rgb)
    assert rgb.mode == "RGB" and pixels.shape == (32, 32, 3)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (24, 16), (0, 0, 0, 0))  # no ink: white
    cmyk.paste((0, 255, 255, 0), (0, 0, 12, 16))  # magenta + yellow: red
    rgb = load_rgb(encode(cmyk, "JPEG", quality=95))
    assert rgb.mode == "RGB" and rgb.size == (24, 16)
    assert np.allclose(rgb.getpixel((3, 8)), (255, 0, 0), atol=12)
    assert np.allclose(rgb.getpixel((20, 8)), (255, 255, 255), atol=12)


def test_exif_orientation_is_applied():
    stored = Image.new("RGB", (32, 16), (255, 0, 0))
    stored.paste((0, 0, 255), (16, 0, 32, 16))  # left red, right blue as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    upright = load_rgb(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert upright.size == (16, 32)
    assert np.allclose(upright.getpixel((8, 4)), (255, 0, 0), atol=20)  # the left half is now on top
    assert np.allclose(upright.getpixel((8, 28)), (0, 0, 255), atol=20)


def test_truncated_jpeg_is_reported_as_truncated():
    data = noise_jpeg(48, 32)
    with pytest.raises(ImageError, match="truncated") as error:
        load_rgb(data[: len(data) * 2 // 3])
    assert error.value.reason == "truncated"


@pytest.mark.parametrize("data", [b"", b"<html>404 not found</html>", b"\xff\xd8\xff" + b"\x00" * 40])
def test_bytes_that_are_no_image_are_not_image(data):
    with pytest.raises(ImageError) as error:
        load_rgb(data)
    assert error.value.reason == "not_image"


def test_header_limits_are_checked_before_decoding():
    with pytest.raises(ImageError) as error:
        load_rgb(noise_jpeg(64, 8), ImageLimits(max_aspect_ratio=4.0))
    assert error.value.reason == "bad_aspect"
    with pytest.raises(ImageError) as error:
        load_rgb(noise_jpeg(16, 16), ImageLimits(min_side=20))
    assert error.value.reason == "too_small"


def test_draft_mode_downscale_gives_the_exact_target_size():
    data = noise_jpeg(640, 480)
    assert load_rgb(data, shorter_side=60).size == (80, 60)  # a 1/8 DCT decode, no resize left
    assert load_rgb(data, shorter_side=50).size == (67, 50)  # 1/8 decode, then a small resize
    assert load_rgb(data, max_side=100).size == (100, 75)
    assert load_rgb(data, shorter_side=1000).size == (640, 480)  # never enlarged
    small = load_rgb(data, shorter_side=50)
    assert Image.open(io.BytesIO(encode_jpeg(small, 90))).size == (67, 50)


def test_encode_jpeg_is_deterministic():
    image = load_rgb(noise_jpeg(40, 30))
    assert encode_jpeg(image, 85) == encode_jpeg(image, 85)
    assert encode_jpeg(image, 85) != encode_jpeg(image, 60)
