"""Pretrain -> finetune on tiny records, tracked in a throwaway MLflow store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from mlimages.config import load_params
from mlimages.errors import InputError
from mlimages.models.resnet import get_backbone, stage_layers
from mlimages.tracking.registry import training_data
from mlimages.train.fit import TrainingDiverged, fit
from mlimages.train.config import FinetuneConfig, PretrainConfig

from .fakes import NUM_CLASSES, TINY

pytestmark = pytest.mark.slow  # pretrains then finetunes


def logged_models(run_id: str) -> list:
    experiment_id = mlflow.get_run(run_id).info.experiment_id
    models = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list",
                                         filter_string=f"source_run_id = '{run_id}'")
    return sorted(models, key=lambda m: int(m.tags["mlimages.step"]))


def test_pretrain_then_finetune_chain(tiny_records, tracking_uri, tmp_path):
    pretrain = fit("pretrain", PretrainConfig(**TINY, steps=8), tiny_records["ml_train"], tiny_records["ml_val"],
                   tmp_path / "pre")
    assert pretrain.step == 8 and (tmp_path / "pre" / "model.keras").is_file()
    assert json.loads((tmp_path / "pre" / "summary.json").read_text())["run_id"] == pretrain.run_id
    run = mlflow.get_run(pretrain.run_id)
    assert run.data.params["depth"] == "50" and run.data.params["loss"] == "adaptive"
    assert {"loss", "learning_rate", "images_per_s", "val_map"} <= set(run.data.metrics)
    assert run.data.tags["mlimages.task"] == "pretrain" and "git_commit" in run.data.tags
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"ml/train", "ml/val"}
    (checkpoint,) = logged_models(pretrain.run_id)  # one epoch of 64 / 8 steps: one checkpoint
    assert checkpoint.tags["mlimages.step"] == "8" and checkpoint.tags["mlimages.task"] == "pretrain"
    assert checkpoint.tags["mlimages.classes_file"] == "classes/classes.tsv"
    assert {m.key for m in checkpoint.metrics if m.step == 8} >= {"val_map", "loss"}

    # Finetune from a registry alias on that checkpoint: backbone restored, new 5-way head, stem +
    # stages 1-2 frozen, the last epoch at a larger size; the alias is recorded pinned to its version.
    version = mlflow.register_model(f"models:/{checkpoint.model_id}", "tiny-pretrained").version
    mlflow.MlflowClient().set_registered_model_alias("tiny-pretrained", "champion", version)
    cfg = FinetuneConfig(**{**TINY, "area_range": (0.05, 1.0)}, epochs=2, freeze_stages=True,
                         final_size=40, final_size_epochs=1)
    source = "models:/tiny-pretrained@champion"
    finetune = fit("finetune", cfg, tiny_records["in_train"], tiny_records["in_val"], tmp_path / "ft", source)
    run = mlflow.get_run(finetune.run_id)
    assert run.data.params["init_model"] == source
    assert run.data.tags["mlimages.init_model"] == f"models:/tiny-pretrained/{version}"
    assert training_data(run).endswith(f" from models:/tiny-pretrained/{version}")
    assert finetune.step == 16 and finetune.model.output_shape == (None, NUM_CLASSES)
    pretrained = get_backbone(mlflow.keras.load_model(source))
    frozen = stage_layers(get_backbone(finetune.model), (0, 1))
    for layer in frozen:
        for ours, theirs in zip(layer.get_weights(), pretrained.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    last = pretrained.get_layer("global_pool_bn").get_weights()[0]
    assert not np.array_equal(get_backbone(finetune.model).get_layer("global_pool_bn").get_weights()[0], last)
    models = logged_models(finetune.run_id)
    assert [m.tags["mlimages.step"] for m in models] == ["8", "16"]
    assert {"val_top1", "val_top5"} <= {m.key for m in models[1].metrics}
    assert 0.0 <= finetune.metrics["val_top1"] <= finetune.metrics["val_top5"] <= 1.0


def test_finetune_source_that_does_not_exist(tiny_records, tracking_uri, tmp_path):
    cfg = FinetuneConfig(**TINY, steps=1)
    for source in [str(tmp_path / "nothing.keras"), "models:/no-such-model@champion"]:
        with pytest.raises(InputError, match="pretrained model not found"):
            fit("finetune", cfg, tiny_records["in_train"], tiny_records["in_val"], tmp_path / "ft", source)


def test_wrong_label_kind_and_depth_are_input_errors(tiny_records, tracking_uri, tmp_path):
    with pytest.raises(InputError, match="multi-label records"):
        fit("pretrain", PretrainConfig(**TINY, steps=1), tiny_records["in_train"], tiny_records["in_val"], tmp_path)
    with pytest.raises(InputError, match="depth"):
        fit("pretrain", PretrainConfig(**{**TINY, "depth": 34}, steps=1), tiny_records["ml_train"],
            tiny_records["ml_val"], tmp_path)


@pytest.mark.filterwarnings("ignore:invalid value encountered in logaddexp:RuntimeWarning")  # NaN weights, on purpose
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_records, tracking_uri, tmp_path):
    # The first step is good (checkpoint 1), the next ones explode.
    cfg = PretrainConfig(**{**TINY, "schedule": "paper", "warmup_steps": 1, "warmup_lr": 0.01, "base_lr": 1e30},
                         steps=6, checkpoint_every_steps=1)
    with pytest.raises(TrainingDiverged, match="training diverged: (loss is|the weights are) (nan|inf)") as error:
        fit("pretrain", cfg, tiny_records["ml_train"], tiny_records["ml_val"], tmp_path / "out")
    kept = tf.train.latest_checkpoint(str(tmp_path / "out" / "checkpoints"))
    assert kept and kept in str(error.value)
    reader = tf.train.load_checkpoint(kept)
    assert all(np.all(np.isfinite(reader.get_tensor(name))) for name in reader.get_variable_to_shape_map()
               if reader.get_variable_to_dtype_map()[name].is_floating)
    run = mlflow.search_runs(experiment_names=["test"], output_format="list")[0]
    assert run.info.status == "FAILED" and "mlimages.diverged_at_step" in run.data.tags
    assert all(math.isfinite(m.value) for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss"))


def test_repository_params_sections_load():
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    pretrain = load_params("pretrain", PretrainConfig, params)
    finetune = load_params("finetune", FinetuneConfig, params)
    assert pretrain.depth in (50, 101, 152) and finetune.depth == pretrain.depth
    assert pretrain.area_range[0] >= 0.7 and finetune.area_range[0] < pretrain.area_range[0]
    assert finetune.final_size > finetune.image_size
