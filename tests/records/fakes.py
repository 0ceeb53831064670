"""Tiny images, image shards and hierarchies for the record tests."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from mlimages.hierarchy import Category, format_hierarchy
from mlimages.records.image_shard_format import member_names


def make_jpeg(width: int = 32, height: int = 24, seed: int = 0, quality: int = 90) -> bytes:
    """A noisy RGB JPEG (noise keeps images distinct and their sizes realistic)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_hierarchy(path: Path, classes: int = 6) -> Path:
    """A two-root hierarchy of `classes` categories (0 and 1 are roots)."""
    categories = [Category(i, f"n{i:08d}", -1 if i < 2 else i % 2, f"class {i}") for i in range(classes)]
    path.write_text(format_hierarchy(categories), encoding="utf-8")
    return path


def make_sample(line: int, data: bytes, labels=(2,), confidences=None) -> dict:
    source = f"file:///images/{line}.jpg"
    return {
        "key": hashlib.sha256(source.encode()).hexdigest()[:16],
        "line": line,
        "source": source,
        "labels": list(labels),
        "confidences": list(confidences or [1.0] * len(labels)),
        "width": 32,
        "height": 24,
        "sha256": hashlib.sha256(data).hexdigest(),
        "data": data,
    }


def write_image_shard(path: Path, samples: list[dict], seed: int | None = None) -> Path:
    """Write samples as the downloader does (``<key>.jpg`` then ``<key>.json``), optionally shuffled."""
    samples = list(samples)
    if seed is not None:
        random.Random(seed).shuffle(samples)  # another download order
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            meta = {k: v for k, v in sample.items() if k != "data"}
            image_name, meta_name = member_names(sample["key"])
            for name, payload in ((image_name, sample["data"]), (meta_name, json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path
