"""Tiny record folders for tests, written by the real record writer (never a hand-written index.json)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from mlimages.records.index import write_classes
from mlimages.records.schema import encode_example
from mlimages.records.writer import ShardWriter

# (encoded image, labels, confidences)
Example = tuple[bytes, Sequence[int], Sequence[float]]


def make_colour_jpeg(colour, size=(40, 32), seed=0) -> bytes:
    """A noisy JPEG of one colour, `size` = (width, height)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_record_folder(folder: Path, label_kind: str, num_classes: int, examples: Iterable[Example],
                        records_per_shard: int = 5, size: tuple[int, int] = (32, 40)) -> Path:
    """One split folder (shards + index.json) as the record builders write it.

    Args:
        folder: the split folder to write.
        label_kind: ``"multi"`` or ``"single"``.
        num_classes: the label space recorded in index.json.
        examples: the records, in order.
        records_per_shard: each shard closes at this many records.
        size: (height, width) stored with every record.
    """
    with ShardWriter(folder, label_kind, num_classes, shard_bytes=1 << 30, max_records=records_per_shard) as writer:
        for number, (image, labels, confidences) in enumerate(examples):
            writer.write(encode_example(image, *size, list(labels), list(confidences), filename=f"{number}.jpg"))
        writer.commit()
    return folder


def write_classes_file(path: Path, names: Sequence[str]) -> Path:
    """A classes.tsv naming classes 0..n-1 (wnids are made up)."""
    write_classes(path, [(index, f"n{index:08d}", name) for index, name in enumerate(names)])
    return path
