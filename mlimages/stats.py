"""dataset_stats: the paper's statistics table, measured on the records actually built.

Counts come from the TFRecords (not from the lists), so they include only images that were
downloaded and decoded. Only the sparse label feature is parsed, in batches, so one pass over the
full 17.6M-image train split reads labels and skips pixels.

Outputs (in OUT): ``summary.json`` (DVC metrics), ``images_per_class.csv`` and
``tags_per_image.csv`` (DVC plots), and the same two plots as PNG figures.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from mlimages.errors import InputError
from mlimages.records.index import find_classes_file, list_shards, read_class_names, read_index
from mlimages.records.schema import LABEL

log = logging.getLogger(__name__)

BATCH = 1024


@dataclass(frozen=True)
class StatsConfig:
    """`stats:` section of params.yaml.

    The values live in params.yaml only (no defaults here), so the file and the code cannot disagree.

    Attributes:
        trainable_min_images: a class is "trainable" with at least this many training images.
    """

    trainable_min_images: int


@dataclass(frozen=True)
class LabelCounts:
    """What one split folder holds, label-wise."""

    images: int
    num_classes: int
    images_per_class: np.ndarray  # (num_classes,) images carrying each class
    tags_per_image: Counter  # number of labels -> number of images


def count_labels(folder: str | Path) -> LabelCounts:
    """Count images, labels per image and images per class of a records split folder.

    Raises:
        InputError: the folder is not a records folder, or holds another number of records than
            its index.json says.
    """
    index = read_index(folder)
    num_classes = int(index["num_classes"])
    per_class = np.zeros(num_classes, dtype=np.int64)
    tags: Counter = Counter()
    images = 0
    files = [str(path) for path in list_shards(folder)]
    spec = {LABEL: tf.io.VarLenFeature(tf.int64)}
    dataset = tf.data.TFRecordDataset(files).batch(BATCH).map(lambda batch: tf.io.parse_example(batch, spec)[LABEL])
    for labels in dataset:  # tf.SparseTensor, dense shape (batch, max labels)
        batch = int(labels.dense_shape[0])
        rows = labels.indices[:, 0].numpy()
        tags.update(np.bincount(rows, minlength=batch).tolist())
        per_class += np.bincount(labels.values.numpy(), minlength=num_classes)[:num_classes]
        images += batch
    if images != index["count"]:
        raise InputError(f"{images} records, but index.json says {index['count']}", str(folder))
    return LabelCounts(images, num_classes, per_class, tags)


def summarize(train: LabelCounts, val: LabelCounts, trainable_min_images: int) -> dict:
    """The columns of the paper's statistics table.

    "Average images per class" is the number of training images carrying a class, averaged over
    all classes (= training tags / classes); "trainable" classes have at least
    `trainable_min_images` training images.
    """
    tags = sum(count * images for count, images in train.tags_per_image.items())
    return {
        "train_images": train.images,
        "val_images": val.images,
        "classes": train.num_classes,
        "trainable_classes": int((train.images_per_class >= trainable_min_images).sum()),
        "trainable_min_images": trainable_min_images,
        "avg_tags_per_image": round(tags / max(1, train.images), 4),
        "avg_images_per_class": round(tags / max(1, train.num_classes), 4),
        "classes_without_train_images": int((train.images_per_class == 0).sum()),
    }


def summarize_single_label(train: LabelCounts, val: LabelCounts) -> dict:
    """Image and class counts of a single-label (finetune) task."""
    return {
        "train_images": train.images,
        "val_images": val.images,
        "classes": train.num_classes,
        "min_train_images_per_class": int(train.images_per_class.min()),
        "max_train_images_per_class": int(train.images_per_class.max()),
    }


def load_class_names(folder: str | Path, num_classes: int) -> list[str]:
    """Class names from the split's ``classes.tsv``; the index when there is none."""
    path = find_classes_file(folder)
    return read_class_names(path, num_classes) if path is not None else [str(i) for i in range(num_classes)]


def write_plot_data(train: LabelCounts, names: list[str], out_dir: Path) -> None:
    """``images_per_class.csv`` (classes by decreasing count) and ``tags_per_image.csv``."""
    order = sorted(range(train.num_classes), key=lambda i: (-train.images_per_class[i], i))
    with (out_dir / "images_per_class.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "images", "class", "name"])
        writer.writerows([rank, int(train.images_per_class[i]), i, names[i]] for rank, i in enumerate(order, 1))
    most = max(train.tags_per_image, default=0)
    with (out_dir / "tags_per_image.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tags", "images"])
        writer.writerows([tags, train.tags_per_image.get(tags, 0)] for tags in range(most + 1))


def write_figures(train: LabelCounts, out_dir: Path) -> None:
    """PNG figures of the two plots (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    counts = np.sort(train.images_per_class)[::-1]
    figure, axis = pyplot.subplots(figsize=(6, 4))
    axis.plot(np.arange(1, len(counts) + 1), np.maximum(counts, 0.5))
    axis.set(yscale="log", xlabel="class rank", ylabel="training images", title="Images per class")
    figure.tight_layout()
    figure.savefig(out_dir / "images_per_class.png", dpi=100)
    pyplot.close(figure)
    most = max(train.tags_per_image, default=0)
    figure, axis = pyplot.subplots(figsize=(6, 4))
    axis.bar(range(most + 1), [train.tags_per_image.get(t, 0) for t in range(most + 1)])
    axis.set(xlabel="tags per image", ylabel="training images", title="Tags per image")
    figure.tight_layout()
    figure.savefig(out_dir / "tags_per_image.png", dpi=100)
    pyplot.close(figure)


def write_dataset_stats(
    train_dir: str | Path,
    val_dir: str | Path,
    out_dir: str | Path,
    config: StatsConfig,
    finetune_dirs: tuple[str | Path, str | Path] | None = None,
) -> dict:
    """Measure the multi-label splits (and optionally the finetune task) and write every output.

    Returns:
        The content of ``summary.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val = count_labels(train_dir), count_labels(val_dir)
    summary = {"ml_images": summarize(train, val, config.trainable_min_images)}
    if finetune_dirs is not None:
        summary["imagenet"] = summarize_single_label(*(count_labels(folder) for folder in finetune_dirs))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_plot_data(train, load_class_names(train_dir, train.num_classes), out_dir)
    write_figures(train, out_dir)
    log.info("dataset statistics: %s", summary)
    return summary
