"""Read the records of TFRecord files back in plain Python.

Training reads shards through `tf.data` and `schema.parse_example`; this module is for tools and
tests, which want `schema.Record` objects. The folder around the shards (index.json, classes.tsv,
verification) is `mlimages.records.index`.
"""

from __future__ import annotations

import re
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


def find_corrupt_record(path) -> str | None:
    """``"first bad record: N (...)"`` for the first record of a TFRecord file failing its CRC, else None.

    Records are numbered from 0. TensorFlow checks each frame's length and data CRC32C as it reads.
    """
    count = 0
    try:
        for _ in tf.data.TFRecordDataset([str(path)]):
            count += 1
    except tf.errors.DataLossError as error:
        return f"first bad record: {count} ({describe_data_loss(error)})"
    return None


def describe_data_loss(error) -> str:
    """TensorFlow's reason for a DataLossError in one short line, without its op context."""
    first_line = str(error.message).splitlines()[0].split(" [Op:")[0]
    return re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", first_line).strip()  # e.g. "corrupted record at 1087"
