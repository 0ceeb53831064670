"""Tiny worlds for the dedup tests: demo-world images, planted copies, image shards, an ImageNet folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from mlimages.demo import DemoConfig
from mlimages.demo.scenes import make_pretrain_scene

from tests.factories import params_config
from tests.records.fakes import make_sample, write_hierarchy, write_image_shard

DEMO = params_config("demo", DemoConfig, image_size=64)


def demo_image(split: str, index: int) -> Image.Image:
    return Image.fromarray(make_pretrain_scene(DEMO, split, index).image)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def half_size(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)


def brighter(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.1)


def planted_copies(image: Image.Image) -> dict[str, bytes]:
    """The three edits of the issue: resized to 50%, re-encoded at JPEG quality 60, brightness +10%."""
    return {"half": jpeg(half_size(image)), "q60": jpeg(image, 60), "bright": jpeg(brighter(image))}


def write_world(root: Path, distinct: int = 12) -> dict:
    """Train and val image shards plus an ImageNet-layout finetune folder, with planted copies.

    Train lines 1..distinct are distinct demo images; then three edited copies of line 1, the same
    bytes as line 2 under another URL, and a copy (q60) of the first finetune val image. Val holds
    four distinct demo val images, one of them (line 3) re-encoded from train line 5.

    Returns:
        Lines of the planted train samples by name, and the finetune image's ImageNet id.
    """
    bytes_of = {line: jpeg(demo_image("train", line)) for line in range(1, distinct + 1)}
    finetune = demo_image("val", 99)
    lines = {"half": distinct + 1, "q60": distinct + 2, "bright": distinct + 3, "exact": distinct + 4,
             "leak": distinct + 5}
    for name, data in planted_copies(demo_image("train", 1)).items():
        bytes_of[lines[name]] = data
    bytes_of[lines["exact"]] = bytes_of[2]
    bytes_of[lines["leak"]] = jpeg(finetune, 60)
    samples = [make_sample(line, data, labels=(2 + line % 4,), confidences=(0.5 + 0.01 * line,))
               for line, data in sorted(bytes_of.items())]
    write_image_shard(root / "images" / "train" / "00000.tar", samples[:10], seed=1)
    write_image_shard(root / "images" / "train" / "00001.tar", samples[10:], seed=2)
    val = [make_sample(line, jpeg(demo_image("val", line))) for line in (1, 2, 4)]
    val.append(make_sample(3, jpeg(demo_image("train", 5), 70)))
    write_image_shard(root / "images" / "val" / "00000.tar", val)
    for split, index in (("train", 1), ("val", 99), ("val", 98)):
        folder = root / "imagenet" / split / "n00000001"
        folder.mkdir(parents=True, exist_ok=True)
        image = finetune if index == 99 else demo_image("val", index)
        (folder / f"img_{index}.JPEG").write_bytes(jpeg(image))
    write_hierarchy(root / "hierarchy.txt")
    return {"lines": lines, "samples": {s["line"]: s for s in samples}, "finetune_id": "n00000001/img_99.JPEG",
            "val_leak_source": val[-1]["source"]}


def random_hashes(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, size=count, dtype=np.uint64)
