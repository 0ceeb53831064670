"""A 64-bit perceptual hash (pHash) of an already-decoded image.

The image is reduced to a 32x32 grayscale thumbnail, transformed with a 2-D DCT-II, and the
top-left 8x8 block of coefficients (the lowest spatial frequencies, DC included) is thresholded
at its median: bit 63 is coefficient (0, 0), bit 0 coefficient (7, 7), row by row. Resizing,
re-encoding and small brightness changes move few of these coefficients across the median, so
copies of one photo land within a few bits of each other while unrelated photos differ in about
half of them.

Callers pass the PIL image they already decoded (the downloader validates every fetched image,
`build_imagenet` re-encodes every image), so the hash costs one small resize and two 8x32
matrix products, not another decode. Only the top 8 DCT rows and columns are computed: the
32x32 transform restricted to them is ``D8 @ X @ D8.T`` with the 8x32 slice of the DCT matrix.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

THUMB_SIDE = 32
BLOCK_SIDE = 8
HASH_BITS = BLOCK_SIDE * BLOCK_SIDE
HEX_DIGITS = HASH_BITS // 4


def _dct_rows(size: int, rows: int) -> np.ndarray:
    """The first `rows` rows of the orthonormal DCT-II matrix of order `size`, float64 (rows, size)."""
    k = np.arange(rows)[:, None]
    n = np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * np.sqrt(2.0 / size)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT8 = _dct_rows(THUMB_SIDE, BLOCK_SIDE)  # (8, 32)
_WEIGHTS = (np.uint64(1) << np.arange(HASH_BITS - 1, -1, -1, dtype=np.uint64))  # bit of each coefficient


def compute_phash(image: Image.Image) -> int:
    """The 64-bit pHash of a decoded image, as an unsigned int in ``[0, 2**64)``.

    Args:
        image: any PIL image (RGB, L, RGBA, ...), upright; it is not modified.

    Returns:
        The hash; `format_phash` writes it as 16 hex digits.
    """
    gray = image if image.mode == "L" else image.convert("L")
    # BOX averages every source pixel into the thumbnail: no aliasing, and cheap for any size.
    thumb = np.asarray(gray.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX), dtype=np.float64)
    coefficients = (_DCT8 @ thumb @ _DCT8.T).ravel()  # (64,), row-major
    bits = coefficients > np.median(coefficients)
    return int(_WEIGHTS[bits].sum())


def phash_of_bytes(data: bytes) -> int:
    """The pHash of encoded image bytes (used by the backfill of folders made before hashing).

    Raises:
        PIL.UnidentifiedImageError / OSError: the bytes are not a decodable image.
    """
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMB_SIDE * 4, THUMB_SIDE * 4))  # JPEG: a reduced-scale DCT decode suffices
        return compute_phash(ImageOps.exif_transpose(image))


def format_phash(value: int) -> str:
    """16 lower-case hex digits, the form stored in `.json` metadata and the stage's files."""
    return f"{value:0{HEX_DIGITS}x}"


def parse_phash(text: str) -> int:
    """The inverse of `format_phash`; raises ValueError on anything but 16 hex digits."""
    if len(text) != HEX_DIGITS:
        raise ValueError(f"expected {HEX_DIGITS} hex digits, got {text!r}")
    return int(text, 16)


def hamming_distance(a: int, b: int) -> int:
    """Number of differing bits of two hashes."""
    return (a ^ b).bit_count()
