"""Tiny generated records and params for the training tests: 32 px JPEGs, 5 classes, a cut-down ResNet."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from tests.factories import write_classes_file, write_record_folder

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
    """`count` learnable records in `num_shards` shards, with classes.tsv beside the folder (as ImageNet's)."""
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(count):
        label = int(rng.integers(NUM_CLASSES))
        labels, confidences = [label], [1.0]
        if label_kind == "multi":
            labels.append((label + 1) % NUM_CLASSES)
            confidences.append(0.8)
        examples.append((make_image(label, rng), labels, confidences))
    write_record_folder(folder, label_kind, NUM_CLASSES, examples, records_per_shard=math.ceil(count / num_shards),
                        size=(SIZE_PX, SIZE_PX))
    write_classes_file(folder.parent / "classes.tsv", [f"class {i}" for i in range(NUM_CLASSES)])
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
