"""Read a split folder back: its index.json, its shards, its records in plain Python.

Training reads shards through `tf.data` and `schema.parse_example`; this module is for tools,
statistics and tests, which want `schema.Record` objects and a check of the folder's integrity.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Iterator

import tensorflow as tf

from mlimages.errors import InputError
from mlimages.records.schema import Record, decode_example
from mlimages.records.writer import FORMAT, INDEX, hash_file


def read_index(folder) -> dict:
    """The index.json of a split folder, checked for our format."""
    path = Path(folder) / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no index.json: not a records folder (or not finished)", str(folder)) from None
    except json.JSONDecodeError as error:
        raise InputError(f"index.json is not valid JSON ({error.msg})", f"{path}:{error.lineno}") from None
    if index.get("format") != FORMAT:
        raise InputError(f"unknown format {index.get('format')!r}, expected {FORMAT!r}", str(path))
    return index


def find_classes_file(folder) -> Path | None:
    """The classes.tsv of a split folder: inside it (ML-Images splits) or beside it (ImageNet)."""
    for candidate in (Path(folder) / "classes.tsv", Path(folder).parent / "classes.tsv"):
        if candidate.is_file():
            return candidate
    return None


def list_shards(folder) -> list[Path]:
    """Shard paths of a split folder, in index order."""
    return [Path(folder) / shard["file"] for shard in read_index(folder)["shards"]]


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


def verify_folder(folder) -> list[str]:
    """Check every shard against index.json (exists, size, sha256, record count), reading no record
    of a shard whose bytes already disagree with the index.

    Returns:
        One line per problem, naming the shard (and, for a corrupted one, its first bad record);
        empty when the folder is intact.
    """
    problems = []
    for shard in read_index(folder)["shards"]:
        path = Path(folder) / shard["file"]
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != shard["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, index says {shard['bytes']}")
        elif hash_file(path) != shard["sha256"]:
            bad = find_corrupt_record(path)
            problems.append(f"{path}: sha256 differs from index; " + (bad or "every record's CRC passes"))
        elif (count := sum(1 for _ in iter_serialized([path]))) != shard["count"]:
            problems.append(f"{path}: {count} records, index says {shard['count']}")
    return problems


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
