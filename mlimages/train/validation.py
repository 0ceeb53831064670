"""Epoch-end validation on a subset: mAP for multi-label pretraining, top-1/top-5 for finetuning.

Runs on the chief only, outside the replicated step; the numbers are logged at the checkpoint's
step so each LoggedModel carries them. Full evaluation (several sizes, 10-crop, every metric) is
the evaluate entry point's job.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from mlimages import metrics as metric_fns
from mlimages.data.pipeline import InputConfig, make_dataset
from mlimages.tasks import is_multi_label


def validate(model: keras.Model, files: list, config, num_classes: int, size: int) -> dict[str, float]:
    """Score `model` on the first ``config.val_examples`` validation records, centre crops at `size`.

    Returns:
        ``{"val_map": ...}`` for pretraining, ``{"val_top1": ..., "val_top5": ...}`` for finetuning.
    """
    input_cfg = InputConfig(image_size=size, batch_size=config.val_batch_size, num_classes=num_classes,
                            crop_fraction=config.crop_fraction)
    batches = math.ceil(config.val_examples / config.val_batch_size)
    predict = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    scores, targets = [], []
    for images, batch_targets in make_dataset(files, input_cfg, training=False).take(batches):
        scores.append(np.asarray(predict(images), np.float32))  # (batch, classes)
        targets.append(batch_targets.numpy())
    scores, targets = np.concatenate(scores), np.concatenate(targets)
    if is_multi_label(config.task):
        probabilities = np.exp(-np.logaddexp(0.0, -scores))  # sigmoid without overflow
        value = metric_fns.mean_average_precision(targets >= 0.5, probabilities)
        return {"val_map": 0.0 if math.isnan(value) else value}
    labels = targets.argmax(axis=1)
    return {
        "val_top1": metric_fns.top_k_accuracy(labels, scores, 1),
        "val_top5": metric_fns.top_k_accuracy(labels, scores, min(5, num_classes)),
    }
