"""The one record schema, shared by every writer and reader.

Keys follow tensorflow/models' image records. Labels are sparse: `image/class/label` holds the
class indices and `image/class/confidence` their confidences (same length). A dense float vector
over 11,166 classes would cost 44,664 bytes per image, more than the image itself, so it is only
written on request (`image/class/dense`, raw little-endian float32 bytes, for readers of the
original layout) and never read back by us. Single-label (ImageNet) records use the same keys
with one label of confidence 1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

IMAGE = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
FILENAME = "image/filename"
SHA256 = "image/key/sha256"
LABEL = "image/class/label"
CONFIDENCE = "image/class/confidence"
DENSE = "image/class/dense"

FEATURES = {
    IMAGE: tf.io.FixedLenFeature([], tf.string),
    FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpeg"),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
    LABEL: tf.io.VarLenFeature(tf.int64),
    CONFIDENCE: tf.io.VarLenFeature(tf.float32),
}


@dataclass(frozen=True)
class Record:
    """One decoded record, in plain Python (for tools, statistics and tests)."""

    image: bytes
    format: str
    height: int
    width: int
    filename: str
    sha256: str
    labels: tuple[int, ...]
    confidences: tuple[float, ...]


def encode_example(
    image: bytes,
    height: int,
    width: int,
    labels: tuple[int, ...] | list[int],
    confidences: tuple[float, ...] | list[float] | None = None,
    filename: str = "",
    image_format: str = "jpeg",
    dense_classes: int | None = None,
) -> bytes:
    """Serialize one image and its labels; deterministic bytes for the same inputs.

    Args:
        image: encoded image bytes (JPEG by default).
        height, width: size of the encoded image in pixels.
        labels: class indices.
        confidences: one per label; all 1.0 when omitted.
        filename: a name for people (the source URL or file name).
        image_format: ``"jpeg"`` or ``"png"``.
        dense_classes: when set, also write the dense label vector of that length (legacy readers).
    """
    confidences = [1.0] * len(labels) if confidences is None else list(confidences)
    if len(confidences) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(confidences)} confidences")
    feature = {
        IMAGE: _bytes(image),
        FORMAT: _bytes(image_format.encode()),
        HEIGHT: _ints([height]),
        WIDTH: _ints([width]),
        FILENAME: _bytes(filename.encode("utf-8")),
        SHA256: _bytes(hashlib.sha256(image).hexdigest().encode()),
        LABEL: _ints(labels),
        CONFIDENCE: tf.train.Feature(float_list=tf.train.FloatList(value=confidences)),
    }
    if dense_classes is not None:
        feature[DENSE] = _bytes(dense_labels(labels, confidences, dense_classes).tobytes())
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def decode_example(serialized: bytes) -> Record:
    """Parse one serialized record in plain Python (no graph); the inverse of `encode_example`."""
    feature = tf.train.Example.FromString(serialized).features.feature

    def one_bytes(key: str, default: bytes = b"") -> bytes:
        return feature[key].bytes_list.value[0] if key in feature and feature[key].bytes_list.value else default

    return Record(
        image=one_bytes(IMAGE),
        format=one_bytes(FORMAT, b"jpeg").decode(),
        height=int(feature[HEIGHT].int64_list.value[0]),
        width=int(feature[WIDTH].int64_list.value[0]),
        filename=one_bytes(FILENAME).decode("utf-8"),
        sha256=one_bytes(SHA256).decode(),
        labels=tuple(int(v) for v in feature[LABEL].int64_list.value),
        confidences=tuple(float(v) for v in feature[CONFIDENCE].float_list.value),
    )


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Graph-mode parse of one record for `tf.data`: image bytes, dense-free sparse labels.

    Returns:
        ``image`` (string scalar), ``height``/``width`` (int64), ``filename`` (string),
        ``labels`` (int64, shape (k,)) and ``confidences`` (float32, shape (k,)).
    """
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    return {
        "image": parsed[IMAGE],
        "height": parsed[HEIGHT],
        "width": parsed[WIDTH],
        "filename": parsed[FILENAME],
        "labels": tf.sparse.to_dense(parsed[LABEL]),
        "confidences": tf.sparse.to_dense(parsed[CONFIDENCE]),
    }


def dense_labels(labels, confidences, num_classes: int) -> np.ndarray:
    """The dense float32 target vector of length `num_classes` (built inside a batch, not stored)."""
    dense = np.zeros(num_classes, dtype=np.float32)
    dense[np.asarray(labels, dtype=np.int64)] = np.asarray(confidences, dtype=np.float32)
    return dense


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
