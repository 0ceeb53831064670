"""Transcoding one image for the records: decode, orient, shrink, re-encode.

Kept apart from the record writer so that a worker that only transcodes (a Ray task of the records
build) imports Pillow and numpy, not TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """`transcode` for one sample of the ordered stream; a `BadSample` passes through."""
    return sample if isinstance(sample, BadSample) else transcode(sample.data, config)
