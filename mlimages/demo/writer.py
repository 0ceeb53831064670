"""Write the demo world to disk in the layouts the real data uses.

    OUT/dictionary_and_semantic_hierarchy.txt   the hierarchy, real format
    OUT/lists/{train,val}_urls.txt              ML-Images lists with file: URLs (see `image_url`)
    OUT/images/{train,val}/NNNNN_HASH.{jpg,png} the pretraining images
    OUT/imagenet/{train,val}/<wnid>/*.JPEG      the finetune task, ILSVRC-2012 layout
    OUT/imagenet/dictionary.txt                 `index<TAB>name words` in sorted-wnid order
    OUT/world.json                              what was made, from which params

Image file names carry a hash of their bytes, so a change of any drawing is a change of its URL:
the lists change with it and DVC reruns everything downstream, even though the download stage
cannot see the files behind the URLs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image
from tqdm import tqdm

from mlimages.annotations import Annotation, format_line
from mlimages.demo.config import DemoConfig
from mlimages.demo.scenes import make_finetune_image, make_pretrain_scene, make_rng
from mlimages.demo.world import make_categories, make_finetune_classes
from mlimages.errors import InputError
from mlimages.hierarchy import Hierarchy, format_hierarchy

log = logging.getLogger(__name__)

HIERARCHY_FILE = "dictionary_and_semantic_hierarchy.txt"
MARKER_FILE = "world.json"
PNG_EVERY = 10  # every tenth pretraining image is a PNG, so the pipeline sees more than JPEG


def make_demo_world(config: DemoConfig, out_dir: str | Path) -> dict:
    """Make the whole demo world under `out_dir`, replacing an earlier demo world there.

    The world is built in a sibling folder and renamed into place, so an interrupted run never
    leaves half a world behind. A non-empty `out_dir` that is not a demo world is refused.

    Returns:
        The summary also written to ``world.json``.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER_FILE).is_file():
        raise InputError("refusing to replace a non-empty folder that is not a demo world", str(out_dir))
    work = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    categories = make_categories()
    hierarchy = Hierarchy(categories, source=HIERARCHY_FILE)
    (work / "lists").mkdir(parents=True)
    (work / HIERARCHY_FILE).write_text(format_hierarchy(categories), encoding="utf-8")
    counts = {}
    for split, count in (("train", config.train_images), ("val", config.val_images)):
        lines = write_pretrain_split(config, hierarchy, split, count, work, out_dir)
        (work / "lists" / f"{split}_urls.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[f"{split}_images"], counts[f"{split}_lines"] = count, len(lines)
    counts.update(write_finetune_task(config, work / "imagenet"))
    summary = {"params": dataclasses.asdict(config), "categories": len(categories), **counts}
    (work / MARKER_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    work.rename(out_dir)
    log.info("demo world written to %s: %s", out_dir, counts)
    return summary


def write_pretrain_split(
    config: DemoConfig, hierarchy: Hierarchy, split: str, count: int, work: Path, final: Path
) -> list[str]:
    """Draw and write one split's images; return its list lines (URLs point into `final`)."""
    folder = work / "images" / split
    folder.mkdir(parents=True)
    index_of = {c.name: c.index for c in hierarchy.categories.values()}
    lines, duplicates = [], []
    for i in tqdm(range(count), desc=f"demo {split}", unit="img", mininterval=2.0):
        scene = make_pretrain_scene(config, split, i)
        data, ext = encode_image(scene.image, config.jpeg_quality, png=i % PNG_EVERY == PNG_EVERY - 1)
        name = f"{i:05d}_{hashlib.sha256(data).hexdigest()[:12]}.{ext}"
        (folder / name).write_bytes(data)
        url = image_url(final / "images" / split / name)
        labels = {index_of[tag]: value for tag, value in scene.labels.items()}
        rng = make_rng(config, split, i, 1)  # list-writing choices, apart from the drawing
        if rng.random() < config.ancestor_fraction:
            labels = hierarchy.close(labels)
        first, second = split_labels(labels, rng.random() < config.duplicate_fraction)
        lines.append(list_line(url, first))
        if second:
            duplicates.append(list_line(url, second))
    return lines + duplicates  # duplicate URLs come later in the file, as they do in the real lists


def split_labels(labels: dict[int, float], duplicate: bool) -> tuple[dict[int, float], dict[int, float]]:
    """Split one image's labels over two list lines (the second empty unless `duplicate`)."""
    items = sorted(labels.items())
    if not duplicate or len(items) < 2:
        return labels, {}
    half = len(items) // 2
    return dict(items[:half]), dict(items[half:])


def image_url(path: Path) -> str:
    """The list URL of a demo image: relative to the working directory when the image is under it.

    `dvc repro` runs in the repository root, so the demo lists say `file:data/demo/images/...`:
    the same text in every checkout, which keeps the lists, keys, records and their DVC hashes
    independent of where the checkout sits. A world written elsewhere gets absolute URLs.
    """
    try:
        relative = path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path.as_uri()
    return "file:" + quote(relative.as_posix())


def list_line(url: str, labels: dict[int, float]) -> str:
    return format_line(Annotation(url, tuple(sorted(labels.items()))))


def encode_image(pixels: np.ndarray, quality: int, png: bool) -> tuple[bytes, str]:
    """Encoded bytes and file extension; both encoders are deterministic for the same pixels."""
    buffer = io.BytesIO()
    if png:
        Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
        return buffer.getvalue(), "png"
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue(), "jpg"


def write_finetune_task(config: DemoConfig, root: Path) -> dict:
    """The single-label task in the ILSVRC-2012 folder layout, with its dictionary file."""
    classes = make_finetune_classes()
    val_number = 0
    for split, per_class in (("train", config.finetune_train_per_class), ("val", config.finetune_val_per_class)):
        for class_index, cls in enumerate(tqdm(classes, desc=f"demo finetune {split}", unit="class")):
            folder = root / split / cls.wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = make_finetune_image(config, split, class_index, cls, i)
                data, _ = encode_image(pixels, config.jpeg_quality, png=False)
                if split == "train":
                    name = f"{cls.wnid}_{i}.JPEG"
                else:
                    val_number += 1
                    name = f"ILSVRC2012_val_{val_number:08d}.JPEG"
                (folder / name).write_bytes(data)
    rows = [f"{i}\t" + "\t".join(cls.name.split()) for i, cls in enumerate(classes)]
    (root / "dictionary.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {
        "finetune_classes": len(classes),
        "finetune_train_images": len(classes) * config.finetune_train_per_class,
        "finetune_val_images": len(classes) * config.finetune_val_per_class,
    }
