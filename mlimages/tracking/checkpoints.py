"""Training checkpoints as MLflow LoggedModels, each carrying the shape of its model.

Each kept checkpoint becomes a Keras-flavor LoggedModel at its step, with that step's metrics
linked, so checkpoints compare side by side in the MLflow UI. The model's shape (`ModelSpec`:
depth, width, training size, evaluation crop, classes file digest) is stored as the LoggedModel's
params, so registering or serving a checkpoint never guesses it from the run's params.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import mlflow

from mlimages.errors import InputError
from mlimages.tracking.names import (
    CLASSES_FILE_TAG, SERVING_TAG, STEP_TAG, TASK_TAG, checkpoint_name,
)
from mlimages.tracking.requirements import pip_requirements


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The shape of a checkpoint's model, stored with it.

    Attributes:
        depth: ResNet depth (50, 101, 152).
        width_multiplier: channel scale (1.0 = the paper's network).
        image_size: training crop side in pixels.
        crop_fraction: evaluation centre-crop fraction (0.875: 256 -> 224).
        classes_sha256: sha256 of the classes.tsv the head was trained on ("" when there was none).
    """

    depth: int
    width_multiplier: float
    image_size: int
    crop_fraction: float
    classes_sha256: str = ""

    def as_params(self) -> dict[str, str]:
        return {field.name: str(value) for field, value in zip(dataclasses.fields(self), dataclasses.astuple(self))}


def read_model_spec(logged_model) -> ModelSpec:
    """The `ModelSpec` stored with a checkpoint LoggedModel.

    Raises:
        InputError: the checkpoint carries no (or an incomplete) spec, e.g. it was logged by an
            older version of this project: register it with `register_keras_model` instead.
    """
    params, kwargs = logged_model.params or {}, {}
    for field in dataclasses.fields(ModelSpec):
        if field.name not in params:
            if field.default is dataclasses.MISSING:
                raise InputError(f"the checkpoint carries no model spec ({field.name} missing)",
                                 f"models:/{logged_model.model_id}")
            continue
        kwargs[field.name] = {"int": int, "float": float}.get(field.type, str)(params[field.name])
    return ModelSpec(**kwargs)


def find_checkpoints(run_id: str) -> list:
    """The finished Keras checkpoint LoggedModels of a training run (tag `STEP_TAG`), by step.

    A checkpoint whose upload broke off (the tracking server went away) stays PENDING or FAILED: it
    is not a checkpoint, and the training run logs that step again.
    """
    run = mlflow.get_run(run_id)
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list")
    checkpoints = [m for m in models if STEP_TAG in m.tags and SERVING_TAG not in m.tags
                   and str(m.status).endswith("READY")]
    return sorted(checkpoints, key=lambda m: int(m.tags[STEP_TAG]))


def logged_checkpoint_steps(run_id: str) -> set[int]:
    """Steps whose checkpoint is already a LoggedModel of `run_id` (so a resume does not log twice)."""
    return {int(m.tags[STEP_TAG]) for m in find_checkpoints(run_id)}


def log_checkpoint(model, step: int, task: str, spec: ModelSpec, metrics: Mapping[str, float],
                   classes_file: str | None = None, tags: Mapping[str, str] | None = None) -> str:
    """Log `model` as a Keras-flavor LoggedModel at `step`, linked to that step's metrics.

    The metrics are logged in the run at `step` first; `mlflow.keras.log_model(step=...)` then
    links every run metric of that step to the new LoggedModel.

    Args:
        model: the Keras classifier (logits).
        step: the global training step of the checkpoint.
        task: ``"pretrain"`` or ``"finetune"``.
        spec: the model's shape, stored as the LoggedModel's params.
        metrics: metric values at `step` (already-logged ones are linked too).
        classes_file: artifact path of classes.tsv in the run.
        tags: extra LoggedModel tags.

    Returns:
        The LoggedModel id (``models:/<id>`` loads it).
    """
    if metrics:
        mlflow.log_metrics(dict(metrics), step=step)
    model_tags = {STEP_TAG: str(step), TASK_TAG: task, **(tags or {})}
    if classes_file:
        model_tags[CLASSES_FILE_TAG] = classes_file
    info = mlflow.keras.log_model(
        model, name=checkpoint_name(step), step=step, tags=model_tags, params=spec.as_params(),
        signature=make_checkpoint_signature(model), pip_requirements=pip_requirements(),
    )
    return info.model_id


def make_checkpoint_signature(model):
    """Tensor signature of a classifier checkpoint: scaled float32 images in, logits out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    classes = model.output_shape[-1]
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, 3), "images")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes), "logits")]),
    )
