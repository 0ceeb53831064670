"""`tf.data` datasets of training and evaluation batches from a TFRecord folder.

Records hold sparse labels (`image/class/label` + `image/class/confidence`); they become dense
(batch, num_classes) float32 targets only after batching, so nothing of size num_classes is kept
per example in the shuffle buffer. Reading is interleaved over shards with autotuned
parallelism; ``deterministic=True`` fixes the element order and every random crop (tests,
multi-worker training where all workers must agree on the stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from mlimages.data import preprocess
from mlimages.errors import InputError
from mlimages.records.index import list_record_files
from mlimages.records.schema import parse_example

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class InputConfig:
    """How to read one split.

    Attributes:
        image_size: side of the square model input in pixels.
        batch_size: global batch size.
        num_classes: width of the dense targets (must match the folder's index.json).
        area_range, aspect_range: random crop ranges (training only).
        flip: random horizontal flips (training only).
        crop_fraction: evaluation centre crop fraction (0.875: 256 -> 224).
        shuffle_buffer: examples in the shuffle buffer (training only).
        seed: seed of shuffling and crops; None for a fresh seed each run.
        deterministic: fixed element order (slower; for tests and multi-worker runs).
    """

    image_size: int
    batch_size: int
    num_classes: int
    area_range: tuple[float, float] = (0.7, 1.0)
    aspect_range: tuple[float, float] = (0.75, 1.333)
    flip: bool = True
    crop_fraction: float = 0.875
    shuffle_buffer: int = 1024
    seed: int | None = None
    deterministic: bool = False


def make_dataset(files, config: InputConfig, training: bool) -> tf.data.Dataset:
    """Batches of ``(images, targets)``: images (batch, size, size, 3) in [-1, 1], targets (batch, C).

    Args:
        files: a record folder (checked with `mlimages.records.index.list_record_files`) or shard paths.
        config: the `InputConfig`.
        training: repeat forever, shuffle, random crops and flips, drop the last partial batch;
            otherwise one pass in file order with centre crops.
    """
    if isinstance(files, (str, Path)):
        files = list_record_files(files, config.num_classes)
    if not files:
        raise InputError("no record files given")
    options = tf.data.Options()
    options.deterministic = config.deterministic or not training
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    if training:
        dataset = dataset.shuffle(len(files), seed=config.seed).repeat()
    dataset = dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
        deterministic=options.deterministic,
    )
    if training:
        dataset = dataset.shuffle(config.shuffle_buffer, seed=config.seed)
        seeds = tf.data.Dataset.random(seed=config.seed).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda record, seed: _train_example(record, seed, config), num_parallel_calls=AUTOTUNE
        )
    else:
        dataset = dataset.map(lambda record: _eval_example(record, config), num_parallel_calls=AUTOTUNE)
    dataset = dataset.padded_batch(
        config.batch_size, padding_values=(0.0, tf.constant(-1, tf.int64), 0.0), drop_remainder=training,
    )
    dataset = dataset.map(lambda images, labels, conf: (images, dense_targets(labels, conf, config.num_classes)))
    return dataset.prefetch(AUTOTUNE).with_options(options)


def _train_example(record, seed, config: InputConfig):
    example = parse_example(record)
    image = preprocess.train_crop(
        example["image"], seed, config.image_size, config.area_range, config.aspect_range, config.flip
    )
    return image, example["labels"], example["confidences"]


def _eval_example(record, config: InputConfig):
    example = parse_example(record)
    image = preprocess.eval_crop(example["image"], config.image_size, config.crop_fraction)
    return image, example["labels"], example["confidences"]


def dense_targets(labels: tf.Tensor, confidences: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Padded sparse labels (batch, k) (-1 = padding) and confidences -> dense (batch, num_classes).

    A label listed twice keeps its highest confidence.
    """
    valid = tf.where(labels >= 0)  # (n, 2): (row, position)
    classes = tf.gather_nd(labels, valid)
    indices = tf.stack([valid[:, 0], classes], axis=1)
    updates = tf.gather_nd(confidences, valid)
    shape = tf.stack([tf.shape(labels, out_type=tf.int64)[0], tf.constant(num_classes, tf.int64)])
    return tf.tensor_scatter_nd_max(tf.zeros(shape, tf.float32), indices, updates)  # (batch, C)
