"""Turn fetched bytes into the stored RGB JPEG, or a failure class.

Header checks (size, aspect ratio, pixel cap) come first, so a decompression bomb is refused
before any pixel is decoded. An upright RGB JPEG that is already small enough is stored as it
came (no generation loss, no re-encode cost) after a reduced-scale draft decode proves its data
is complete; everything else (PNG, GIF, WebP, grayscale, CMYK, EXIF-rotated, too large) is decoded
with `mlimages.images.load_rgb`, which uses JPEG draft mode to avoid full-size decodes, and
re-encoded.

The perceptual hash of every stored image (`dedup.phash`, for the near-duplicate search) is taken
from the image decoded here, so it costs a 32x32 thumbnail and two small matrix products, never a
second decode. The as-is path's check decodes at the reduced scale the dedup backfill uses
(`phash_of_bytes`: at least 128 pixels a side), so a stored hash and a backfilled one of the same
bytes are bit for bit equal. The 1/8-scale decode the check used before is cheaper for photos
under 1024 pixels a side, but hashes taken from it were 2 bits off on 500x375 photos (`python -m
benchmarks.bench_download --part hashing`), against a near-duplicate threshold of 4. A
re-encoded image is hashed from the pixels that were encoded.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

from PIL import Image

from mlimages.dedup.phash import THUMB_SIDE, compute_phash, format_phash
from mlimages.download.config import DownloadConfig
from mlimages.download.outcome import FetchError
from mlimages.images import ImageError, encode_jpeg, load_rgb, open_image

EXIF_ORIENTATION = 0x0112
PHASH_DRAFT = (THUMB_SIDE * 4, THUMB_SIDE * 4)  # as in `dedup.phash.phash_of_bytes`


@dataclass(frozen=True)
class StoredImage:
    """The bytes to store, their pixel size and perceptual hash (16 hex digits)."""

    jpeg: bytes
    width: int
    height: int
    phash: str


def make_stored_image(data: bytes, config: DownloadConfig) -> StoredImage:
    """Validate `data` and produce the bytes to store.

    Args:
        data: the fetched body.
        config: limits, placeholder hashes, `max_side` and `jpeg_quality`.

    Raises:
        FetchError: ``gone`` for a known placeholder image, or the `ImageError` reason
            (``not_image``, ``truncated``, ``too_small``, ``bad_aspect``, ``too_many_pixels``).
    """
    if config.placeholder_sha256 and hashlib.sha256(data).hexdigest() in config.placeholder_sha256:
        raise FetchError("gone", "known placeholder image")
    try:
        image = open_image(data, config.limits)
        if can_store_as_is(image, config.max_side):
            width, height = image.size  # before the draft decode shrinks it
            check_decodes(image)
            return StoredImage(data, width, height, format_phash(compute_phash(image)))
        rgb = load_rgb(data, config.limits, max_side=config.max_side or None)
        phash = format_phash(compute_phash(rgb))
        return StoredImage(encode_jpeg(rgb, config.jpeg_quality), rgb.width, rgb.height, phash)
    except ImageError as error:
        detail = str(error).removeprefix(f"{error.reason}: ")
        raise FetchError(error.reason, detail[:160]) from None


def can_store_as_is(image: Image.Image, max_side: int) -> bool:
    """True for an RGB JPEG with no EXIF rotation that needs no shrinking."""
    if image.format != "JPEG" or image.mode != "RGB":
        return False
    if max_side and max(image.size) > max_side:
        return False
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block: take the decode path, which ignores it safely
        return False
    return orientation in (0, 1)


def check_decodes(image: Image.Image) -> None:
    """Decode at reduced scale: every entropy-coded byte is still read, so truncation shows.

    The scale is the backfill's (`PHASH_DRAFT`), so the hash taken from this decode is the one a
    backfill of the stored bytes computes.
    """
    image.draft("RGB", PHASH_DRAFT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        reason = "truncated" if "truncated" in str(error).lower() else "not_image"
        raise ImageError(reason, str(error)) from None
