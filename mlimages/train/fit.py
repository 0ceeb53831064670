"""One `fit` for pretraining (multi-label, adaptive loss) and finetuning (single-label).

The run is resumable by construction: the MLflow run is found again by a key derived from the
params and the output folder, the state (weights, optimizer slots, step, loss counters) comes back
from the last checkpoint, and metrics of steps already logged are not logged twice. Each kept
checkpoint is also an MLflow LoggedModel at its step, so checkpoints compare in the UI.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mlimages.tracking import runs as tracking
from mlimages.data.pipeline import InputConfig, make_dataset
from mlimages.records.index import find_classes_file, list_record_files, read_index
from mlimages.train.distribute import is_chief, make_strategy, worker_id
from mlimages.errors import InputError
from mlimages.tracking.pretrained import pin_source
from mlimages.train.config import TrainConfig, check_duration, count_total_steps, find_size_switch_step
from mlimages.train.state import build_train_state, make_train_step
from mlimages.train.validation import validate

LABEL_KIND = {"pretrain": "multi", "finetune": "single"}
SCRATCH = "scratch"  # the `init_model` of a finetune that starts from random weights

_log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class FitResult:
    """What a finished run left behind."""

    run_id: str | None
    step: int
    metrics: dict
    model_path: str
    model: keras.Model | None = None


@dataclass
class _Run:
    """Per-run context shared by the helpers of `fit`."""

    task: str
    cfg: TrainConfig
    strategy: tf.distribute.Strategy
    chief: bool
    num_classes: int
    steps_per_epoch: int
    total_steps: int
    switch_step: int
    val_files: list
    log_floor: int = -1
    classes_file: str | None = None
    logged_steps: frozenset = frozenset()


def fit(task: str, cfg: TrainConfig, train_dir: str | Path, val_dir: str | Path, out_dir: str | Path,
        init_model: str | None = None) -> FitResult:
    """Train (or resume training) and log everything to MLflow.

    Args:
        task: ``"pretrain"`` or ``"finetune"``.
        cfg: `PretrainConfig` or `FinetuneConfig`.
        train_dir, val_dir: record folders (index.json + shards).
        out_dir: checkpoints, ``model.keras`` and ``summary.json`` go here; the same folder and
            params resume the same run.
        init_model: finetune source (see `mlimages.tracking.pretrained`); None, "" or "scratch" trains from scratch.

    Returns:
        The `FitResult`; raises `TrainingDiverged` on a NaN loss, `InputError` on bad input.
    """
    strategy = make_strategy(cfg.strategy)  # first: multi-worker setup must precede other TF ops
    init_model = None if init_model in (None, "", SCRATCH) else init_model
    check_duration(cfg, task)
    out_dir = Path(out_dir)
    run = _make_run(task, cfg, strategy, train_dir, val_dir)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(cfg.precision)
    try:
        with strategy.scope():
            latest = tf.train.latest_checkpoint(str(out_dir / "checkpoints"))
            resuming = latest is not None
            source = None if resuming or init_model is None else pin_source(init_model)
            state = build_train_state(cfg, run.num_classes, run.total_steps, source)
        checkpoint = state.make_checkpoint()
        manager = _make_manager(checkpoint, state, out_dir, run)
        if resuming:
            checkpoint.restore(latest).assert_existing_objects_matched()
            _log.info("resumed from step %d (optimizer iterations %d, positive-counter sum %.1f)",
                      int(state.step.numpy()), int(state.optimizer.iterations.numpy()),
                      float(tf.reduce_sum(state.pos_counts)))
        if not run.chief:
            return _train(run, state, manager, train_dir, out_dir)
        params = {"task": task, **dataclasses.asdict(cfg), "train_dir": str(train_dir), "val_dir": str(val_dir),
                  "init_model": init_model or SCRATCH}
        key = tracking.make_run_key(params, out_dir)
        tags = {"mlimages.task": task, **tracking.lineage_tags()}
        if source:  # set when the run starts; a resumed run keeps the version it started from
            tags[tracking.INIT_MODEL_TAG] = source
        with tracking.start_or_resume_run(cfg.experiment, key, f"{task}-{out_dir.name}", tags) as active:
            _start_logging(run, params, train_dir, val_dir, active.info.run_id)
            return _train(run, state, manager, train_dir, out_dir, active.info.run_id)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _make_run(task, cfg, strategy, train_dir, val_dir) -> _Run:
    index = read_index(train_dir)
    if index.get("label_kind") != LABEL_KIND[task]:
        raise InputError(f"{task} needs {LABEL_KIND[task]}-label records, found {index.get('label_kind')!r}",
                         str(Path(train_dir) / "index.json"))
    num_classes = int(index["num_classes"])
    val_files = list_record_files(val_dir, num_classes)
    steps_per_epoch = max(1, int(index["count"]) // cfg.batch_size)
    total = count_total_steps(cfg, steps_per_epoch)
    return _Run(task, cfg, strategy, is_chief(strategy), num_classes, steps_per_epoch, total,
                find_size_switch_step(cfg, steps_per_epoch, total), val_files)


def _make_manager(checkpoint, state, out_dir: Path, run: _Run) -> tf.train.CheckpointManager:
    # Every worker saves (saving may need collectives); only the chief's folder is the real one.
    folder = out_dir / "checkpoints" if run.chief else out_dir / "worker-checkpoints" / worker_id(run.strategy)
    return tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=run.cfg.keep_checkpoints,
                                      step_counter=state.step, checkpoint_name="ckpt")


def _start_logging(run: _Run, params: dict, train_dir, val_dir, run_id: str) -> None:
    import mlflow

    tracking.log_flat_params(params)
    run.log_floor = tracking.last_logged_step(run_id)
    run.logged_steps = frozenset(tracking.logged_checkpoint_steps(run_id))
    tracking.log_dataset_input(train_dir, "training")
    tracking.log_dataset_input(val_dir, "validation")
    classes = find_classes_file(train_dir)
    if classes is not None:
        run.classes_file = tracking.log_classes_file(classes)
    mlflow.set_tag("mlimages.total_steps", str(run.total_steps))


def _input_config(run: _Run, step: int) -> InputConfig:
    cfg = run.cfg
    size = getattr(cfg, "final_size", cfg.image_size) if step >= run.switch_step else cfg.image_size
    return InputConfig(
        image_size=size, batch_size=cfg.batch_size, num_classes=run.num_classes, area_range=cfg.area_range,
        aspect_range=cfg.aspect_range, flip=cfg.flip, crop_fraction=cfg.crop_fraction,
        shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed + step,  # a resumed run draws a fresh, seeded order
        deterministic=cfg.strategy == "multi_worker",
    )


def _make_iterator(run: _Run, train_dir, step: int):
    files = list_record_files(train_dir, run.num_classes)
    dataset = make_dataset(files, _input_config(run, step), training=True)
    return iter(run.strategy.experimental_distribute_dataset(dataset))


def _train(run: _Run, state, manager, train_dir, out_dir: Path, run_id: str | None = None) -> FitResult:
    step = int(state.step.numpy())
    train_step = make_train_step(state, run.cfg, run.strategy)
    iterator = _make_iterator(run, train_dir, step) if step < run.total_steps else None
    metrics, last_log = {}, (step, time.perf_counter())
    while step < run.total_steps:
        if step == run.switch_step and step > 0:
            iterator = _make_iterator(run, train_dir, step)  # resolution switch (224 -> 299)
        images, targets = next(iterator)
        loss = float(train_step(images, targets, tf.constant(step, tf.int64)))
        step += 1
        if not math.isfinite(loss):
            _stop_diverged(run, step, loss, manager)
        checkpoint_step = _is_checkpoint_step(run, step)
        if step % run.cfg.log_every_steps == 0 or checkpoint_step:
            last_log = _log_progress(run, state, step, loss, last_log)
        if checkpoint_step:
            state.step.assign(step)
            metrics = _validate_and_save(run, state, manager, step, loss)
    return _finish(run, state, out_dir, step, metrics, run_id)


def _is_checkpoint_step(run: _Run, step: int) -> bool:
    every_steps, every_epochs = run.cfg.checkpoint_every_steps, run.cfg.checkpoint_every_epochs
    epoch_end = bool(every_epochs) and step % (every_epochs * run.steps_per_epoch) == 0
    return epoch_end or step == run.total_steps or bool(every_steps and step % every_steps == 0)


def _log_metrics(run: _Run, metrics: dict, step: int) -> None:
    import mlflow

    if run.chief and step > run.log_floor:
        mlflow.log_metrics(metrics, step=step)


def _log_progress(run: _Run, state, step: int, loss: float, last_log: tuple) -> tuple:
    now = time.perf_counter()
    images_per_s = (step - last_log[0]) * run.cfg.batch_size / max(now - last_log[1], 1e-9)
    learning_rate = float(keras.ops.convert_to_numpy(state.optimizer.learning_rate))
    _log.info("step %d/%d loss %.4f lr %.5f %.1f images/s", step, run.total_steps, loss, learning_rate, images_per_s)
    _log_metrics(run, {"loss": loss, "learning_rate": learning_rate, "images_per_s": images_per_s}, step)
    return step, time.perf_counter()


def _validate_and_save(run: _Run, state, manager, step: int, loss: float) -> dict:
    # A step's loss is computed before its update: the update itself may have broken the weights.
    if not all(bool(tf.reduce_all(tf.math.is_finite(v.value))) for v in state.model.trainable_variables):
        _stop_diverged(run, step, float("nan"), manager, "the weights")
    metrics = {"loss": loss}
    if run.chief:
        size = _input_config(run, step - 1).image_size
        validation = validate(state.model, run.val_files, run.cfg, run.task, run.num_classes, size)
        _log.info("step %d validation %s", step, {k: round(v, 4) for k, v in validation.items()})
        metrics.update(validation)
    manager.save(checkpoint_number=step)
    if run.chief and step not in run.logged_steps:
        # the loss of this step is logged already; log_model links every metric of the step
        tracking.log_checkpoint(state.model, step, run.task, validation if step > run.log_floor else {},
                                run.classes_file, {"mlimages.epoch": f"{step / run.steps_per_epoch:.2f}"})
    return metrics


def _stop_diverged(run: _Run, step: int, loss: float, manager, what: str = "loss") -> None:
    message = (f"training diverged: {what} {'are' if what != 'loss' else 'is'} {loss} at step {step}; "
               f"the last good checkpoint is kept: {manager.latest_checkpoint or 'none yet'}")
    if run.chief:
        import mlflow

        mlflow.set_tag("mlimages.diverged_at_step", str(step))
        mlflow.end_run(status="FAILED")
    raise TrainingDiverged(message)


def _finish(run: _Run, state, out_dir: Path, step: int, metrics: dict, run_id: str | None) -> FitResult:
    model_path = out_dir / "model.keras"
    if not run.chief:  # a worker's own checkpoints only existed so that saving ran on every worker
        shutil.rmtree(out_dir / "worker-checkpoints" / worker_id(run.strategy), ignore_errors=True)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        state.model.save(model_path)
        summary = {"task": run.task, "run_id": run_id, "step": step, "metrics": metrics}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return FitResult(run_id, step, metrics, str(model_path), state.model)


def read_replica_weights(model: keras.Model) -> list[list[np.ndarray]]:
    """Every variable's value on every replica, ``[replica][variable]`` (to check they agree)."""
    per_variable = [getattr(v.value, "values", (v.value,)) for v in model.variables]
    replicas = max(len(values) for values in per_variable)
    return [[np.asarray(values[min(r, len(values) - 1)]) for values in per_variable] for r in range(replicas)]
