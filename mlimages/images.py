"""Decode, check, orient, resize and re-encode images with Pillow.

Shared by the downloader (validation of fetched bytes) and the record builder (re-encoding to the
stored size). Checks that need only the header (size, aspect ratio, pixel count) run before any
pixel is decoded, so a decompression bomb costs nothing. Large JPEGs are decoded with Pillow's
draft mode, which asks libjpeg for a 1/2, 1/4 or 1/8 scale decode: a 12-megapixel photo meant
for a 500 px record is never decoded at full size.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps

# We enforce our own pixel cap from the header; Pillow's global one would raise a different error.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(Exception):
    """The bytes are not a usable image. `reason` is a short class for reports."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")

    def __reduce__(self):  # pickled with both arguments: results cross processes and machines
        return type(self), (self.reason, self.detail)


@dataclass(frozen=True)
class ImageLimits:
    """Header checks applied before decoding."""

    min_side: int = 1
    max_aspect_ratio: float = 1e9
    max_pixels: int = 178_956_970  # Pillow's own decompression-bomb threshold


def open_image(data: bytes, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Open `data` lazily (header only) and check it against `limits`.

    Raises:
        ImageError: ``not_image``, ``too_small``, ``bad_aspect`` or ``too_many_pixels``.
    """
    if not data:
        raise ImageError("not_image", "empty body")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except Exception as error:  # Pillow raises many types for unreadable headers
        # Pillow names the buffer it read ("<_io.BytesIO object at 0x...>"): noise, not a place.
        detail = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(error))
        raise ImageError("not_image", f"{type(error).__name__}: {detail}") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError("too_many_pixels", f"{width}x{height} > {limits.max_pixels} pixels")
    if min(width, height) < limits.min_side:
        raise ImageError("too_small", f"{width}x{height}, minimum side {limits.min_side}")
    if max(width, height) / max(1, min(width, height)) > limits.max_aspect_ratio:
        raise ImageError("bad_aspect", f"{width}x{height}, maximum aspect ratio {limits.max_aspect_ratio}")
    return image


def load_rgb(
    data: bytes,
    limits: ImageLimits = ImageLimits(),
    max_side: int | None = None,
    shorter_side: int | None = None,
) -> Image.Image:
    """Decode `data` into an upright RGB image, optionally downscaled.

    Args:
        data: encoded bytes (JPEG, PNG, GIF, WebP, ... grayscale and CMYK too).
        limits: header checks, see `open_image`.
        max_side: when set, shrink so the longer side is at most this (never enlarges).
        shorter_side: when set, shrink so the shorter side is at most this (never enlarges).

    Raises:
        ImageError: as `open_image`, or ``truncated`` / ``not_image`` when pixel data is bad.
    """
    image = open_image(data, limits)
    target = _target_size(image.size, max_side, shorter_side)
    if image.format == "JPEG" and target != image.size:
        image.draft("RGB", target)  # reduced-size DCT decode; result is >= target
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as error:
        reason = "truncated" if "truncated" in str(error).lower() else "not_image"
        raise ImageError(reason, str(error)) from None
    if getattr(image, "is_animated", False):
        image.seek(0)
    image = _to_rgb(image)
    target = _target_size(image.size, max_side, shorter_side)
    if target != image.size:
        image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency flattened onto white (a black background would invent content)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _target_size(size: tuple[int, int], max_side: int | None, shorter_side: int | None) -> tuple[int, int]:
    width, height = size
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(width, height))
    if shorter_side is not None:
        scale = min(scale, shorter_side / min(width, height))
    if scale >= 1.0:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    """Baseline RGB JPEG bytes, deterministic for the same pixels and quality."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue()
