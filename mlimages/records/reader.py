"""Read the records of TFRecord files back in plain Python.

Training reads shards through `tf.data` and `schema.parse_example`; this module is for tools and
tests, which want `schema.Record` objects. The folder around the shards (index.json, classes.tsv,
verification) is `mlimages.records.index`.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import tensorflow as tf

from mlimages.records.schema import Record, decode_example


def iter_serialized(paths: Iterable) -> Iterator[bytes]:
    """Serialized records of TFRecord files, file by file, in order."""
    files = [str(p) for p in paths]
    if not files:
        return
    for serialized in tf.data.TFRecordDataset(files):
        yield serialized.numpy()


def iter_records(paths: Iterable) -> Iterator[Record]:
    """Decoded records of our TFRecord files, in order."""
    for serialized in iter_serialized(paths):
        yield decode_example(serialized)

