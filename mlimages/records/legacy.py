"""Read the original Tencent ML-Images records and convert them to our format.

The original ``tfrecord.py`` wrote one example per image with the keys ``image`` (JPEG bytes),
``label`` (the dense label vector as raw little-endian float32 bytes, 4 x C long: 44,664 bytes
for 11,166 classes), ``name``, ``width`` and ``height``. Here a legacy record becomes the same
`schema.Record` (plain Python) or the same tensor dict (`tf.data`) as one of ours: the non-zero
entries of the dense vector, in class order, are the labels and their values the confidences.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf

from mlimages.errors import InputError
from mlimages.records.reader import iter_serialized
from mlimages.records.schema import Record, encode_example
from mlimages.records.writer import ShardWriter

LEGACY_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string),
    "name": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


def is_legacy_example(serialized: bytes) -> bool:
    """True for a record written by the original ``tfrecord.py`` (it has ``image`` and ``label``)."""
    feature = tf.train.Example.FromString(serialized).features.feature
    return "image" in feature and "label" in feature


def decode_legacy_example(serialized: bytes, where: str = "<record>") -> Record:
    """One legacy record as a `schema.Record` (sparse labels from the dense vector)."""
    feature = tf.train.Example.FromString(serialized).features.feature
    if "image" not in feature or "label" not in feature:
        raise InputError("not a legacy ML-Images record (no 'image' or 'label' key)", where)
    raw = feature["label"].bytes_list.value[0]
    if len(raw) % 4:
        raise InputError(f"label is {len(raw)} bytes, not a float32 vector", where)
    dense = np.frombuffer(raw, dtype="<f4")
    labels = np.flatnonzero(dense)
    image = feature["image"].bytes_list.value[0]

    def first_int(key: str) -> int:
        values = feature[key].int64_list.value if key in feature else []
        return int(values[0]) if values else 0

    name = feature["name"].bytes_list.value[0] if "name" in feature and feature["name"].bytes_list.value else b""
    return Record(image=image, format="jpeg", height=first_int("height"), width=first_int("width"),
                  filename=name.decode("utf-8", "replace"), sha256=hashlib.sha256(image).hexdigest(),
                  labels=tuple(int(i) for i in labels), confidences=tuple(float(dense[i]) for i in labels))


def parse_legacy_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Graph-mode parse of one legacy record: the same dict as `schema.parse_example`."""
    parsed = tf.io.parse_single_example(serialized, LEGACY_FEATURES)
    dense = tf.io.decode_raw(parsed["label"], tf.float32, little_endian=True)  # (C,)
    labels = tf.where(tf.not_equal(dense, 0.0))[:, 0]  # (k,) int64, ascending
    return {
        "image": parsed["image"],
        "height": parsed["height"],
        "width": parsed["width"],
        "filename": parsed["name"],
        "labels": labels,
        "confidences": tf.gather(dense, labels),
    }


def iter_legacy_records(paths: Iterable) -> Iterator[tuple[Record, int]]:
    """``(record, num_classes)`` for every record of legacy TFRecord files, in order."""
    for path in paths:
        for number, serialized in enumerate(iter_serialized([path]), start=1):
            feature = tf.train.Example.FromString(serialized).features.feature
            num_classes = len(feature["label"].bytes_list.value[0]) // 4 if "label" in feature else 0
            yield decode_legacy_example(serialized, f"{path}: record {number}"), num_classes


def convert_legacy(sources: Iterable, out, shard_bytes: int) -> dict:
    """Rewrite legacy records into our format (same image bytes, sparse labels).

    Args:
        sources: legacy TFRecord files.
        out: the split folder to write.
        shard_bytes: shard size target.

    Returns:
        The index of the written folder.
    """
    sources = [Path(s) for s in sources]
    for source in sources:
        if not source.is_file():
            raise InputError("legacy record file not found", str(source))
    records = iter_legacy_records(sources)
    first = next(records, None)
    num_classes = first[1] if first else 0
    with ShardWriter(out, "multi", num_classes, shard_bytes, extra={"converted_from": "tencent-ml-images"}) as writer:
        for record, classes in itertools.chain([first] if first else [], records):
            if classes != num_classes:
                raise InputError(f"{classes} classes in a record after records of {num_classes}", record.filename)
            writer.write(encode_example(record.image, record.height, record.width, record.labels,
                                        record.confidences, filename=record.filename))
        return writer.commit()
