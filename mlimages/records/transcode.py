"""Transcoding one image for the records: read, check, decode, orient, shrink, re-encode.

Kept apart from the record writer so that a worker that only transcodes (a Ray task of the records
build) imports Pillow and numpy, not TensorFlow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mlimages.errors import InputError
from mlimages.images import ImageError, encode_jpeg, load_rgb
from mlimages.records.config import RecordsConfig
from mlimages.records.image_shards import BadSample, ImageSample


@dataclass(frozen=True)
class Transcoded:
    data: bytes  # baseline RGB JPEG
    width: int
    height: int


def transcode(data: bytes, config: RecordsConfig) -> Transcoded | ImageError:
    """Decode, orient, shrink and re-encode one image; a bad image is returned, not raised.

    Besides `ImageError`, any exception of the decoder (Pillow raises assorted types on hostile
    files, e.g. from malformed EXIF) is reported as ``decode_error``: one downloaded file must not
    stop a build of millions.
    """
    try:
        image = load_rgb(data, shorter_side=config.shorter_side, max_side=config.max_side)
        return Transcoded(encode_jpeg(image, config.jpeg_quality), image.width, image.height)
    except ImageError as error:
        return error
    except Exception as error:  # noqa: BLE001 - see the docstring
        return ImageError("decode_error", f"{type(error).__name__}: {error}")


def transcode_sample(sample: ImageSample | BadSample, config: RecordsConfig) -> Transcoded | ImageError | BadSample:
    """Read one sample of the ordered stream, check its sha256, `transcode` it; a `BadSample` passes through.

    An image that cannot be read at all is an `InputError`: the folder changed under the build, and
    skipping would quietly drop whole shards.
    """
    if isinstance(sample, BadSample):
        return sample
    try:
        data = sample.image.read()
    except OSError as error:
        raise InputError(f"cannot read the image of {sample.where} ({error.strerror or error}); was the folder "
                         "changed while the build ran?", sample.image.path) from None
    if sample.image.sha256 and hashlib.sha256(data).hexdigest() != sample.image.sha256:
        return BadSample(sample.where, "sha256_mismatch", "stored bytes differ from their sha256", sample.line,
                         sample.source)
    return transcode(data, config)
