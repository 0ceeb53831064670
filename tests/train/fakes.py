"""Tiny generated records and params for the training tests: 32 px JPEGs, 5 classes, a cut-down ResNet."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mlimages.records.schema import encode_example

NUM_CLASSES = 5
SIZE_PX = 32


def make_image(label: int, rng: np.random.Generator, size: int = SIZE_PX) -> bytes:
    """A JPEG whose colour and stripe direction depend on the class (learnable in a few steps)."""
    base = np.zeros((size, size, 3), np.float32)
    base[..., label % 3] = 200.0
    stripes = (np.arange(size) // 4 % 2) * 55.0
    base += stripes[:, None, None] if label < 3 else stripes[None, :, None]
    image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=90)
    return out.getvalue()


def write_records(folder: Path, count: int, label_kind: str, num_shards: int = 2, seed: int = 0) -> Path:
    """Write `count` records in the TFRecord folder format (index.json + parent classes.tsv)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for shard in range(num_shards):
        name = f"part-{shard:05d}-of-{num_shards:05d}.tfrecord"
        n = 0
        with tf.io.TFRecordWriter(str(folder / name)) as writer:
            for i in range(shard, count, num_shards):
                label = int(rng.integers(NUM_CLASSES))
                labels, conf = [label], [1.0]
                if label_kind == "multi":
                    labels.append((label + 1) % NUM_CLASSES)
                    conf.append(0.8)
                writer.write(encode_example(make_image(label, rng), SIZE_PX, SIZE_PX, labels, conf, filename=f"{i}.jpg"))
                n += 1
        data = (folder / name).read_bytes()
        shards.append({"file": name, "count": n, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    index = {"format": "mlimages-tfrecord-v1", "label_kind": label_kind, "num_classes": NUM_CLASSES,
             "count": count, "shards": shards}
    (folder / "index.json").write_text(json.dumps(index), encoding="utf-8")
    lines = [f"{i}\tn0000000{i}\tclass {i}" for i in range(NUM_CLASSES)]
    (folder.parent / "classes.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# A cut-down network and tiny inputs: a few seconds per run on a laptop CPU.
TINY = dict(
    depth=50, blocks_per_stage=(1, 1, 1, 1), width_multiplier=0.125, image_size=32, batch_size=8,
    schedule="cosine", base_lr=0.05, warmup_steps=2, warmup_lr=0.0, log_every_steps=2,
    val_examples=16, val_batch_size=8, shuffle_buffer=32, experiment="test",
)


def write_tiny_params(path: Path, pretrain: dict, finetune: dict) -> Path:
    """A params.yaml with TINY pretrain/finetune sections plus `pretrain` / `finetune` overrides."""
    import yaml

    def section(extra):
        values = {**TINY, **extra}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    path.write_text(yaml.safe_dump({"pretrain": section(pretrain), "finetune": section(finetune)}), encoding="utf-8")
    return path
