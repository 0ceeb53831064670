"""Evaluate a classifier on a TFRecord folder with a pinned, recorded protocol.

Single-label records: top-1 / top-5 at every size in `evaluate.sizes`; each image's shorter side
is resized to ``round(size / crop_fraction)`` (antialiased bilinear; 256 -> 224, 342 -> 299 with
0.875), then the centre (size, size) crop is taken, or, with `ten_crop`, the four corners and the
centre plus their mirror images, averaging the ten softmax outputs. Multi-label records: mAP,
CP/CR/CF1, OP/OR/OF1 and precision@k (`mlimages.metrics`) over all classes and over the trainable
classes, at the first size. The protocol is returned as one line of text, stored beside every number.

A clean score: given an exclusion set of record filenames (evaluation images with a copy in the
model's pretraining data, from the dedup stage), every metric is also computed over the records
whose filename is not in it, as ``<metric>_clean``, with ``leaked_left_out`` saying how many records
were left out. The model runs once; both scores come from the same predictions.

This module is the protocol only: a config, records and a model in, a metrics dict out. Recording
the results in MLflow and the registry is `mlimages.tracking.evaluation`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from mlimages import metrics
from mlimages.data.pipeline import dense_targets
from mlimages.records.index import list_record_files, read_index
from mlimages.data.preprocess import decode_rgb, resize_and_center_crop, scale_pixels, ten_crops
from mlimages.records.schema import parse_example

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """The `evaluate:` section of params.yaml.

    Attributes:
        sizes: crop sides to evaluate single-label models at (multi-label: the first one).
        crop_fraction: the centre crop covers this fraction of the resized shorter side.
        ten_crop: average 4 corner + centre crops and their mirrors instead of one centre crop.
        batch_size: images per forward pass.
        max_images: evaluate only the first N images (0: all).
        threshold: decision threshold of CP/CR/OP/OR (multi-label).
        precision_at: the k of each precision@k (multi-label).
    """

    sizes: tuple[int, ...]
    crop_fraction: float
    ten_crop: bool
    batch_size: int
    max_images: int
    threshold: float
    precision_at: tuple[int, ...]


def describe_protocol(config: EvaluateConfig, size: int | None = None) -> str:
    """One line naming everything that changes the numbers."""
    sizes = [size] if size else list(config.sizes)
    resize = ", ".join(f"{s}: shorter side {round(s / config.crop_fraction)}" for s in sizes)
    crops = "10-crop (4 corners + centre, mirrored; mean softmax)" if config.ten_crop else "single centre crop"
    limit = f", first {config.max_images} images" if config.max_images else ""
    return f"crop_fraction {config.crop_fraction} ({resize}, antialiased bilinear), {crops}{limit}"


def make_eval_dataset(files: list[str], size: int, config: EvaluateConfig, num_classes: int) -> tf.data.Dataset:
    """Batches of (images, dense targets, filenames) in file order; images (b, size, size, 3) or (b, 10, ...)."""

    def prepare(record):
        example = parse_example(record)
        image = decode_rgb(example["image"])
        if config.ten_crop:
            pixels = ten_crops(image, size, config.crop_fraction)
        else:
            pixels = scale_pixels(resize_and_center_crop(image, size, config.crop_fraction))
        return pixels, example["labels"], example["confidences"], example["filename"]

    dataset = tf.data.TFRecordDataset(files)
    if config.max_images:
        dataset = dataset.take(config.max_images)
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    padding = (0.0, tf.constant(-1, tf.int64), 0.0, "")
    dataset = dataset.padded_batch(config.batch_size, padding_values=padding)
    dataset = dataset.map(lambda images, labels, conf, names: (images, dense_targets(labels, conf, num_classes), names))
    return dataset.prefetch(tf.data.AUTOTUNE)


def predict_probabilities(model, dataset: tf.data.Dataset, multi_label: bool, total: int | None = None):
    """Run the model over `dataset`; returns (targets (n, C), probabilities (n, C), filenames (n,)) as NumPy."""
    targets, outputs, filenames = [], [], []
    for images, dense, names in tqdm(dataset, total=total, desc="evaluate", unit="batch", leave=False):
        crops = images.shape[1] if images.shape.rank == 5 else 1
        flat = tf.reshape(images, [-1, *images.shape[-3:]])  # (b * crops, size, size, 3)
        logits = tf.cast(model(flat, training=False), tf.float32)
        probs = tf.sigmoid(logits) if multi_label else tf.nn.softmax(logits)
        outputs.append(tf.reduce_mean(tf.reshape(probs, [-1, crops, probs.shape[-1]]), axis=1).numpy())
        targets.append(dense.numpy())
        filenames.append(names.numpy())
    return np.concatenate(targets), np.concatenate(outputs), np.concatenate(filenames)


def evaluate_records(model, folder: str | Path, config: EvaluateConfig, trainable=None,
                     exclude: frozenset[str] | None = None) -> tuple[dict, str, int]:
    """Evaluate `model` (images -> logits) on a record folder.

    Args:
        model: Keras classifier.
        folder: a split folder with index.json (``label_kind`` decides the metrics).
        config: the evaluation settings.
        trainable: class indices of the trainable classes (multi-label); None skips that variant.
        exclude: record filenames (``image/filename``) the clean score leaves out; None: no clean score.

    Returns:
        (metrics, protocol line, number of images). Single-label keys: ``top1_224``, ``top5_224``, ...;
        multi-label keys: ``map_all``, ``cf1_all``, ..., ``map_trainable``, ...; with `exclude`, also
        each key + ``_clean`` and ``leaked_left_out`` (the number of records left out).
    """
    index = read_index(folder)
    num_classes = int(index["num_classes"])
    files = list_record_files(folder, num_classes)
    multi = index.get("label_kind") == "multi"
    count = min(index["count"], config.max_images) if config.max_images else index["count"]
    batches = -(-count // config.batch_size)
    results: dict[str, float] = {}
    for size in config.sizes[:1] if multi else config.sizes:
        dataset = make_eval_dataset(files, size, config, num_classes)
        targets, probs, filenames = predict_probabilities(model, dataset, multi, batches)
        results.update(score(targets, probs, size, multi, config, trainable))
        if exclude is not None:
            keep = np.array([name.decode("utf-8") not in exclude for name in filenames], dtype=bool)
            clean = score(targets[keep], probs[keep], size, multi, config, trainable)
            results.update({f"{key}_clean": value for key, value in clean.items()})
            results["leaked_left_out"] = int(np.count_nonzero(~keep))
        _log.info("evaluated %d images at %d px", len(targets), size)
    where = f"{Path(folder).resolve().parent.name}/{Path(folder).name}"
    protocol = describe_protocol(config, config.sizes[0] if multi else None) + f"; {count} images of {where}"
    if exclude is not None:
        left_out = results["leaked_left_out"]
        protocol += (f"; *_clean without the {left_out} of them leaked from pretraining" if left_out
                     else "; none of them leaked from pretraining")
    return results, protocol, count


def score(targets, probs, size: int, multi: bool, config: EvaluateConfig, trainable=None) -> dict[str, float]:
    """The metrics at one size from targets (n, C) and probabilities (n, C); the clean score calls it on a subset."""
    if multi:
        return multi_label_results(targets, probs, config, trainable)
    labels, num_classes = targets.argmax(axis=1), targets.shape[1]
    return {f"top{k}_{size}": metrics.top_k_accuracy(labels, probs, min(k, num_classes)) for k in (1, 5)}


def multi_label_results(targets, probs, config: EvaluateConfig, trainable=None) -> dict[str, float]:
    """Multi-label metrics over all classes (``*_all``) and the trainable ones (``*_trainable``)."""
    results = {}
    variants = {"all": None} if trainable is None else {"all": None, "trainable": np.asarray(trainable)}
    for variant, classes in variants.items():
        values = metrics.multi_label_metrics(targets, probs, classes, config.threshold, tuple(config.precision_at))
        results.update({f"{key}_{variant}": value for key, value in values.items()})
    return results


def trainable_classes(train_folder: str | Path, min_images: int) -> np.ndarray | None:
    """Indices of classes with at least `min_images` training images (the paper's "trainable").

    None when every class qualifies: the `*_trainable` metrics would only repeat the `*_all` ones.
    """
    from mlimages.stats import count_labels

    images_per_class = count_labels(train_folder).images_per_class
    trainable = np.nonzero(images_per_class >= min_images)[0]
    return None if len(trainable) == len(images_per_class) else trainable
