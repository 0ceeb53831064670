"""Sharded, atomic writer of one split folder of TFRecords.

A split folder holds ``part-NNNNN-of-MMMMM.tfrecord`` files and ``index.json``. The total MMMMM is
known only once the last record is written, so shards are written under temporary names into a
sibling ``<folder>.partial`` directory, renamed when the writer commits, and the finished
directory then replaces the old folder in one rename. A reader (or a DVC cache) therefore sees
either the previous complete folder or the new complete one, never a half-written shard.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import tensorflow as tf

from mlimages.errors import InputError
from mlimages.records.index import FORMAT, FRAME_BYTES, INDEX_FILE, hash_file

log = logging.getLogger(__name__)


def shard_name(number: int, total: int) -> str:
    return f"part-{number:05d}-of-{total:05d}.tfrecord"


def max_records_per_shard(samples: int, min_shards: int) -> int | None:
    """Cap on records per shard so that `samples` records fill at least `min_shards` shards."""
    return max(1, math.ceil(samples / min_shards)) if samples and min_shards > 1 else None


class ShardWriter:
    """Write serialized records into shards of about `shard_bytes` each.

    Use as a context manager and call `commit()` at the end; leaving the block without a commit
    (an exception, Ctrl-C) removes the partial output and keeps the old folder untouched::

        with ShardWriter(out, "multi", 11166, shard_bytes=128 << 20) as writer:
            for record in records:
                writer.write(record)
            index = writer.commit()

    Args:
        folder: the split folder to (re)place.
        label_kind: ``"multi"`` (ML-Images) or ``"single"`` (ImageNet).
        num_classes: size of the label space.
        shard_bytes: a shard is closed once it reaches this many bytes.
        max_records: a shard is also closed once it holds this many records (None: no cap).
        extra: more keys for index.json (e.g. the image parameters used); must be JSON-able.
    """

    def __init__(self, folder, label_kind: str, num_classes: int, shard_bytes: int,
                 max_records: int | None = None, extra: dict | None = None):
        self.folder = Path(folder)
        self.partial = self.folder.with_name(self.folder.name + ".partial")
        self.header = {"format": FORMAT, "label_kind": label_kind, "num_classes": int(num_classes), **(extra or {})}
        self.shard_bytes = shard_bytes
        self.max_records = max_records
        self.shards: list[dict] = []  # {"temp": Path, "count": n}
        self._writer: tf.io.TFRecordWriter | None = None
        self._bytes = 0
        self._committed = False

    def __enter__(self) -> "ShardWriter":
        check_replaceable(self.folder)
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._committed and self.partial.exists():
            shutil.rmtree(self.partial)

    def write(self, record: bytes) -> None:
        """Append one serialized record, starting a new shard when needed."""
        if self._writer is None:
            temp = self.partial / f"part-{len(self.shards):05d}.tfrecord.partial"
            self._writer = tf.io.TFRecordWriter(str(temp))
            self.shards.append({"temp": temp, "count": 0})
            self._bytes = 0
        self._writer.write(record)
        self.shards[-1]["count"] += 1
        self._bytes += len(record) + FRAME_BYTES
        full = self.max_records is not None and self.shards[-1]["count"] >= self.max_records
        if full or self._bytes >= self.shard_bytes:
            self._writer.close()
            self._writer = None

    def commit(self) -> dict:
        """Name the shards, write index.json and put the folder in place.

        Returns:
            The index (the content of index.json).
        """
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        total = len(self.shards)
        entries = []
        for number, shard in enumerate(self.shards):
            path = shard["temp"].rename(self.partial / shard_name(number, total))
            entries.append({"file": path.name, "count": shard["count"], "bytes": path.stat().st_size,
                            "sha256": hash_file(path)})
        index = {**self.header, "count": sum(e["count"] for e in entries),
                 "bytes": sum(e["bytes"] for e in entries), "shards": entries}
        (self.partial / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        replace_folder(self.partial, self.folder)
        self._committed = True
        log.info("wrote %d records in %d shards to %s", index["count"], total, self.folder)
        return index


def check_replaceable(folder: Path) -> None:
    """Refuse to replace a folder that holds anything but a records folder (a mistyped --out)."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise InputError("output path exists and is not a folder", str(folder))
    if any(folder.iterdir()) and not (folder / INDEX_FILE).exists():
        raise InputError("output folder is not empty and holds no index.json; refusing to replace it", str(folder))


def replace_folder(new: Path, folder: Path) -> None:
    """Put `new` at `folder`, removing the old one only after the new one is in place."""
    old = folder.with_name(folder.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    new.rename(folder)
    if old.exists():
        shutil.rmtree(old)

