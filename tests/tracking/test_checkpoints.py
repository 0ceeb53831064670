"""Checkpoints as LoggedModels: the model spec travels with each one, and registering needs it."""

from __future__ import annotations

import mlflow
import pytest

from mlimages.errors import InputError
from mlimages.tracking.checkpoints import ModelSpec, find_checkpoints, log_checkpoint, read_model_spec
from mlimages.tracking.names import STEP_TAG, TASK_TAG
from mlimages.tracking.registry import register_checkpoints

from tests.tracking_fixtures import build_tiny_classifier, registry_config

SPEC = ModelSpec(depth=50, width_multiplier=0.125, image_size=32, crop_fraction=0.875, classes_sha256="ab" * 32)


def test_spec_round_trips_and_checkpoints_come_back_by_step(tracking_store):
    mlflow.set_experiment("checkpoint-tests")
    with mlflow.start_run() as run:
        for step in (20, 10):
            log_checkpoint(build_tiny_classifier(3, seed=step), step, "finetune", SPEC, {"loss": 0.5})
    checkpoints = find_checkpoints(run.info.run_id)
    assert [c.tags[STEP_TAG] for c in checkpoints] == ["10", "20"]
    assert all(c.tags[TASK_TAG] == "finetune" for c in checkpoints)
    assert [read_model_spec(c) for c in checkpoints] == [SPEC, SPEC]


def test_a_checkpoint_without_spec_is_refused_loudly(tracking_store):
    mlflow.set_experiment("checkpoint-tests")
    with mlflow.start_run() as run:  # a checkpoint as logged before specs existed: tags only
        mlflow.keras.log_model(build_tiny_classifier(3, seed=1), name="checkpoint", step=5,
                               tags={STEP_TAG: "5", TASK_TAG: "finetune"})
    with pytest.raises(InputError, match="carries no model spec"):
        register_checkpoints(f"runs:/{run.info.run_id}", registry_config())
