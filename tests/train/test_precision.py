"""Mixed precision and XLA are settings: each combination trains a few finite steps."""

from __future__ import annotations

import math

import keras
import mlflow
import pytest

from mlimages.train.fit import fit
from mlimages.train.config import PretrainConfig

from .fakes import tiny_config

pytestmark = pytest.mark.slow  # trains under each precision and XLA setting


@pytest.mark.parametrize(
    "precision, xla, compute_dtype",
    [("mixed_float16", False, "float16"), ("mixed_bfloat16", True, "bfloat16"), ("float32", True, "float32")],
)
def test_precision_and_xla_train_finite_steps(tiny_records, tracking_uri, tmp_path, precision, xla, compute_dtype):
    cfg = tiny_config(PretrainConfig, steps=4, precision=precision, xla=xla)
    result = fit(cfg, tiny_records["ml_train"], tiny_records["ml_val"], tmp_path / "out")
    assert result.step == 4
    conv = next(layer for layer in result.model.layers[1].layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == compute_dtype and conv.variable_dtype == "float32"
    assert result.model.output.dtype == "float32"  # logits stay float32 for a stable loss
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "loss")
    assert history and all(math.isfinite(m.value) for m in history)
    assert mlflow.get_run(result.run_id).data.params["precision"] == precision
