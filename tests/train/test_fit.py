"""Pretrain -> finetune on tiny records, tracked in a throwaway MLflow store."""

from __future__ import annotations

import json
import math

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from mlimages.errors import InputError
from mlimages.models.resnet import get_backbone, stage_layers
from mlimages.tracking.registry import training_data
from mlimages.tracking.checkpoints import find_checkpoints
from mlimages.tracking.names import CLASSES_FILE_TAG, STEP_TAG, TASK_TAG
from mlimages.train.fit import TrainingDiverged, fit
from mlimages.train.config import FinetuneConfig, PretrainConfig

from .fakes import NUM_CLASSES, tiny_config

pytestmark = pytest.mark.slow  # pretrains then finetunes


def test_pretrain_then_finetune_chain(tiny_records, tracking_uri, tmp_path):
    pretrain = fit(tiny_config(PretrainConfig, steps=8), tiny_records["ml_train"], tiny_records["ml_val"],
                   tmp_path / "pre")
    assert pretrain.step == 8 and (tmp_path / "pre" / "model.keras").is_file()
    assert json.loads((tmp_path / "pre" / "summary.json").read_text())["run_id"] == pretrain.run_id
    run = mlflow.get_run(pretrain.run_id)
    assert run.data.params["depth"] == "50" and run.data.params["loss"] == "adaptive"
    assert {"loss", "learning_rate", "images_per_s", "val_map"} <= set(run.data.metrics)
    assert run.data.tags[TASK_TAG] == "pretrain" and "git_commit" in run.data.tags
    assert run.info.run_name == "pretrain-resnet50-w0.125"
    assert mlflow.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"ml/train", "ml/val"}
    (checkpoint,) = find_checkpoints(pretrain.run_id)  # one epoch of 64 / 8 steps: one checkpoint
    assert checkpoint.tags[STEP_TAG] == "8" and checkpoint.tags[TASK_TAG] == "pretrain"
    assert checkpoint.name == "checkpoint-step-8"
    assert checkpoint.tags[CLASSES_FILE_TAG] == "classes/classes.tsv"
    assert {m.key for m in checkpoint.metrics if m.step == 8} >= {"val_map", "loss"}

    # Finetune from a registry alias on that checkpoint: backbone restored, new 5-way head, stem +
    # stages 1-2 frozen, the last epoch at a larger size; the alias is recorded pinned to its version.
    version = mlflow.register_model(f"models:/{checkpoint.model_id}", "tiny-pretrained").version
    mlflow.MlflowClient().set_registered_model_alias("tiny-pretrained", "champion", version)
    cfg = tiny_config(FinetuneConfig, area_range=(0.05, 1.0), epochs=2, freeze_stages=True,
                      final_size=40, final_size_epochs=1)
    source = "models:/tiny-pretrained@champion"
    finetune = fit(cfg, tiny_records["in_train"], tiny_records["in_val"], tmp_path / "ft", source)
    run = mlflow.get_run(finetune.run_id)
    assert run.data.params["init_model"] == source
    assert run.data.tags["mlimages.init_model"] == f"models:/tiny-pretrained/{version}"
    assert training_data(run) == f"from tiny-pretrained v{version}"
    assert run.info.run_name == f"finetune-from-pretrained-v{version}"
    assert finetune.step == 16 and finetune.model.output_shape == (None, NUM_CLASSES)
    pretrained = get_backbone(mlflow.keras.load_model(source))
    frozen = stage_layers(get_backbone(finetune.model), (0, 1))
    for layer in frozen:
        for ours, theirs in zip(layer.get_weights(), pretrained.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    last = pretrained.get_layer("global_pool_bn").get_weights()[0]
    assert not np.array_equal(get_backbone(finetune.model).get_layer("global_pool_bn").get_weights()[0], last)
    models = find_checkpoints(finetune.run_id)
    assert [m.tags[STEP_TAG] for m in models] == ["8", "16"]
    assert {"val_top1", "val_top5"} <= {m.key for m in models[1].metrics}
    assert 0.0 <= finetune.metrics["val_top1"] <= finetune.metrics["val_top5"] <= 1.0


def test_finetune_source_that_does_not_exist(tiny_records, tracking_uri, tmp_path):
    cfg = tiny_config(FinetuneConfig, steps=1)
    for source in [str(tmp_path / "nothing.keras"), "models:/no-such-model@champion"]:
        with pytest.raises(InputError, match="pretrained model not found"):
            fit(cfg, tiny_records["in_train"], tiny_records["in_val"], tmp_path / "ft", source)


def test_wrong_label_kind_and_depth_are_input_errors(tiny_records, tracking_uri, tmp_path):
    with pytest.raises(InputError, match="multi-label records"):
        fit(tiny_config(PretrainConfig, steps=1), tiny_records["in_train"], tiny_records["in_val"], tmp_path)
    with pytest.raises(InputError, match="depth"):
        fit(tiny_config(PretrainConfig, depth=34, steps=1), tiny_records["ml_train"],
            tiny_records["ml_val"], tmp_path)


@pytest.mark.filterwarnings("ignore:invalid value encountered in logaddexp:RuntimeWarning")  # NaN weights, on purpose
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_records, tracking_uri, tmp_path):
    # The first step is good (checkpoint 1), the next ones explode.
    cfg = tiny_config(PretrainConfig, schedule="paper", warmup_steps=1, warmup_lr=0.01, base_lr=1e30,
                         steps=6, checkpoint_every_steps=1)
    with pytest.raises(TrainingDiverged, match="training diverged: (loss is|the weights are) (nan|inf)") as error:
        fit(cfg, tiny_records["ml_train"], tiny_records["ml_val"], tmp_path / "out")
    kept = tf.train.latest_checkpoint(str(tmp_path / "out" / "checkpoints"))
    assert kept and kept in str(error.value)
    reader = tf.train.load_checkpoint(kept)
    assert all(np.all(np.isfinite(reader.get_tensor(name))) for name in reader.get_variable_to_shape_map()
               if reader.get_variable_to_dtype_map()[name].is_floating)
    run = mlflow.search_runs(experiment_names=["test"], output_format="list")[0]
    assert run.info.status == "FAILED" and "mlimages.diverged_at_step" in run.data.tags
    assert all(math.isfinite(m.value) for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss"))


def test_same_command_again_trains_nothing_changed_params_train_anew(tiny_records, tracking_uri, tmp_path, caplog):
    args = (tiny_records["ml_train"], tiny_records["ml_val"], tmp_path / "pre")
    first = fit(tiny_config(PretrainConfig, steps=4, checkpoint_every_steps=4), *args)
    caplog.set_level("INFO", logger="mlimages")
    again = fit(tiny_config(PretrainConfig, steps=4, checkpoint_every_steps=4), *args)
    assert again.run_id == first.run_id and "resumed from step 4" in caplog.text
    assert [m.tags[STEP_TAG] for m in find_checkpoints(first.run_id)] == ["4"]
    patient = tiny_config(PretrainConfig, steps=4, checkpoint_every_steps=4, worker_timeout_s=900,
                          worker_start_timeout_s=3600)  # bounds on waiting, not what is trained
    assert fit(patient, *args).run_id == first.run_id

    changed = fit(tiny_config(PretrainConfig, steps=4, checkpoint_every_steps=4, base_lr=0.02), *args)
    assert changed.run_id != first.run_id and changed.step == 4
    assert [m.tags[STEP_TAG] for m in find_checkpoints(changed.run_id)] == ["4"]  # trained from step 0 again
    assert [p.name for p in (tmp_path / "pre").glob("checkpoints-*")] == [f"checkpoints-{first_key(first)}"]


def first_key(result) -> str:
    return mlflow.get_run(result.run_id).data.tags["mlimages.run_key"][:12]
