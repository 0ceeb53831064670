"""Tiny generated records and params for the training tests: 32 px JPEGs, 5 classes, a cut-down ResNet."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from mlimages.config import build_config

from tests.factories import write_classes_file, write_record_folder

REPO = Path(__file__).resolve().parents[2]
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


# The paper's recipe (params-paper.yaml) cut down: a tiny network and inputs on one CPU, a few
# seconds per run.
TINY = dict(
    depth=50, blocks_per_stage=(1, 1, 1, 1), width_multiplier=0.125, image_size=32, batch_size=8,
    schedule="cosine", base_lr=0.05, warmup_steps=2, warmup_lr=0.0, log_every_steps=2,
    val_examples=16, val_batch_size=8, shuffle_buffer=32, experiment="test",
    precision="float32", strategy="default",
)


def tiny_section(section: str, overrides: dict) -> dict:
    """params-paper.yaml's `section` with TINY and `overrides` on top (steps and epochs replace each other)."""
    import yaml

    values = yaml.safe_load((REPO / "params-paper.yaml").read_text(encoding="utf-8"))[section]
    for duration, other in (("steps", "epochs"), ("epochs", "steps")):
        if duration in overrides:
            values[other] = None
    if section == "finetune":
        values["final_size_epochs"] = 0  # no late size switch unless a test asks for one
    values.update({**TINY, **overrides})
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def tiny_config(cls, **overrides):
    """A `PretrainConfig` or `FinetuneConfig` read by the real loader from TINY params."""
    return build_config(cls, tiny_section(cls.task, overrides), where=f"tiny params: {cls.task}")


def write_tiny_params(path: Path, pretrain: dict, finetune: dict) -> Path:
    """A params file with TINY pretrain/finetune sections plus `pretrain` / `finetune` overrides."""
    import yaml

    sections = {"pretrain": tiny_section("pretrain", pretrain), "finetune": tiny_section("finetune", finetune)}
    path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    return path
