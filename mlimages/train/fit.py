"""One `fit` for pretraining (multi-label, adaptive loss) and finetuning (single-label).

The config's class is the task (`PretrainConfig` or `FinetuneConfig`). What a run is gets fixed before its first step
(`Plan`), what its logging decided when it (re)started is returned by `_start_logging` (`Tracking`), and the loop
state (step, iterator, metrics) lives in `_train` alone. The run is resumable by construction: the MLflow run is found
again by a key derived from the params and the output folder, the state (weights, optimizer slots, step, loss
counters) comes back from the last checkpoint, and metrics of steps already logged are not logged twice. Each kept
checkpoint is also an MLflow LoggedModel at its step, carrying the model's shape (`ModelSpec`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import keras
import tensorflow as tf

from mlimages.data.pipeline import InputConfig, make_dataset
from mlimages.errors import InputError
from mlimages.records.index import INDEX_FILE, find_classes_file, hash_file, list_record_files, read_index
from mlimages.tasks import LABEL_KIND, PRETRAIN
from mlimages.tracking.checkpoints import ModelSpec, logged_checkpoint_steps
from mlimages.tracking.lineage import lineage_tags, read_data_hashes
from mlimages.tracking.names import (
    DIVERGED_TAG, EPOCH_TAG, INIT_MODEL_TAG, LINEAGE_ARTIFACT, TASK_TAG, TOTAL_STEPS_TAG, finetune_run_name,
    pretrain_run_name,
)
from mlimages.tracking.outbox import TrackingOutbox, open_outbox
from mlimages.tracking.pretrained import pin_source
from mlimages.tracking.runs import (
    last_logged_step, log_classes_file, log_dataset_input, log_flat_params, make_run_key, mark_failed,
    start_or_resume_run,
)
from mlimages.train.config import TrainConfig, count_total_steps, find_size_switch_step, run_defining_params
from mlimages.train.distribute import is_chief, worker_id
from mlimages.train.output_folder import claim_output_folder
from mlimages.train.peers import PeerWatch, finish_together, watched_strategy
from mlimages.train.state import build_train_state, make_train_step
from mlimages.train.validation import validate

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


@dataclass(frozen=True)
class Plan:
    """What a run is, fixed before its first step."""

    config: TrainConfig
    strategy: tf.distribute.Strategy
    chief: bool
    num_classes: int
    steps_per_epoch: int
    total_steps: int
    switch_step: int  # first step trained at the final size (== total_steps: never)
    val_files: list
    peers: PeerWatch  # what the run is doing, and the watchdog while the workers wait on each other


@dataclass(frozen=True)
class Tracking:
    """What logging decided when the run (re)started; the defaults are a worker's (it logs nothing)."""

    run_id: str | None = None
    log_floor: int = -1  # metrics of steps up to here were logged before a resume
    logged_steps: frozenset = frozenset()  # checkpoints already LoggedModels
    classes_file: str | None = None  # artifact path of classes.tsv
    spec: ModelSpec | None = None
    outbox: TrackingOutbox | None = None  # metrics and checkpoints go through it: sent by its own thread


def fit(config: TrainConfig, train_dir: str | Path, val_dir: str | Path, out_dir: str | Path,
        init_model: str | None = None) -> FitResult:
    """Train (or resume training) and log everything to MLflow.

    Args:
        config: `PretrainConfig` or `FinetuneConfig`; its class is the task.
        train_dir, val_dir: record folders (index.json + shards).
        out_dir: checkpoints, ``model.keras`` and ``summary.json`` go here; the same folder and
            params resume the same run.
        init_model: finetune source (see `mlimages.tracking.pretrained`); None, "" or "scratch" trains from scratch.

    Returns:
        The `FitResult`; raises `TrainingDiverged` on a NaN loss, `WorkerLost` when a worker of a
        ``multi_worker`` run is lost, `InputError` on bad input.
    """
    init_model = None if init_model in (None, "", SCRATCH) else init_model
    out_dir = Path(out_dir)
    with watched_strategy(config, out_dir / "checkpoints") as (strategy, peers):  # first: precedes other TF ops
        plan = make_plan(config, strategy, train_dir, val_dir, peers)
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(config.precision)
        source = pin_source(init_model) if init_model else None
        params = {"task": config.task, **run_defining_params(config), "train_dir": str(train_dir),
                  "val_dir": str(val_dir), "init_model": init_model or SCRATCH}
        run_key = make_run_key({**params, "init_model_pinned": source}, out_dir)  # a moved alias trains anew
        try:
            if plan.chief:
                claim_output_folder(out_dir, run_key)
            state, manager = _restore_state(plan, out_dir, source)
            if not plan.chief:
                return _train(plan, Tracking(), state, manager, train_dir, out_dir)
            with _tracked_run(plan, params, run_key, train_dir, val_dir, out_dir, source) as tracking:
                return _train(plan, tracking, state, manager, train_dir, out_dir)
        finally:
            keras.config.set_dtype_policy(previous_policy)


def make_plan(config: TrainConfig, strategy, train_dir, val_dir, peers: PeerWatch) -> Plan:
    """Check the record folders against the task and work out the run's length."""
    index = read_index(train_dir)
    kind = LABEL_KIND[config.task]
    if index.get("label_kind") != kind:
        raise InputError(f"{config.task} needs {kind}-label records, found {index.get('label_kind')!r}",
                         str(Path(train_dir) / INDEX_FILE))
    num_classes = int(index["num_classes"])
    val_files = list_record_files(val_dir, num_classes)
    steps_per_epoch = max(1, int(index["count"]) // config.batch_size)
    total = count_total_steps(config, steps_per_epoch)
    return Plan(config, strategy, is_chief(strategy), num_classes, steps_per_epoch, total,
                find_size_switch_step(config, steps_per_epoch, total), val_files, peers)


def _restore_state(plan: Plan, out_dir: Path, source: str | None):
    """Build the train state from the last checkpoint, else from `source`; returns (state, manager)."""
    with plan.strategy.scope():
        latest = tf.train.latest_checkpoint(str(out_dir / "checkpoints"))
        state = build_train_state(plan.config, plan.num_classes, plan.total_steps, None if latest else source)
    checkpoint = state.make_checkpoint()
    # Every worker saves (saving may need collectives); only the chief's folder is the real one.
    folder = out_dir / "checkpoints" if plan.chief else out_dir / "worker-checkpoints" / worker_id(plan.strategy)
    manager = tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=plan.config.keep_checkpoints,
                                         step_counter=state.step, checkpoint_name="ckpt")
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        _log.info("resumed from step %d (optimizer iterations %d, positive-counter sum %.1f)",
                  int(state.step.numpy()), int(state.optimizer.iterations.numpy()),
                  float(tf.reduce_sum(state.pos_counts)))
    return state, manager


@contextlib.contextmanager
def _tracked_run(plan: Plan, params: dict, run_key: str, train_dir, val_dir, out_dir: Path,
                 source: str | None) -> Iterator[Tracking]:
    """Start or resume the run's MLflow run and log what is known before the first step."""
    config = plan.config
    tags = {TASK_TAG: config.task, **lineage_tags()}
    if source:  # the pinned version is part of the run key: a resumed run started from it too
        tags[INIT_MODEL_TAG] = source
    name = (pretrain_run_name(config.depth, config.width_multiplier) if config.task == PRETRAIN
            else finetune_run_name(source))
    with start_or_resume_run(config.experiment, run_key, name, tags) as active:
        tracking = _start_logging(plan, params, train_dir, val_dir, active.info.run_id, out_dir)
        plan.peers.before_hard_stop(lambda: mark_failed(tracking.run_id))  # a lost worker's hard stop
        with tracking.outbox:  # its sender thread stops here, however the run ended
            yield tracking


def _start_logging(plan: Plan, params: dict, train_dir, val_dir, run_id: str, out_dir: Path) -> Tracking:
    import mlflow

    config = plan.config
    log_flat_params(params)
    log_dataset_input(train_dir, "training")
    log_dataset_input(val_dir, "validation")
    mlflow.set_tag(TOTAL_STEPS_TAG, str(plan.total_steps))
    mlflow.log_dict(read_data_hashes(), LINEAGE_ARTIFACT)
    classes = find_classes_file(train_dir)
    spec = ModelSpec(config.depth, config.width_multiplier, config.image_size, config.crop_fraction,
                     hash_file(classes) if classes else "")
    outbox = open_outbox(run_id, out_dir)  # delivers what a run stopped by an outage kept: before the floor
    return Tracking(run_id, last_logged_step(run_id), frozenset(logged_checkpoint_steps(run_id)),
                    log_classes_file(classes) if classes else None, spec, outbox)


def _input_config(plan: Plan, step: int) -> InputConfig:
    config = plan.config
    size = config.size_switch()[1] if step >= plan.switch_step else config.image_size
    return InputConfig(
        image_size=size, batch_size=config.batch_size, num_classes=plan.num_classes, area_range=config.area_range,
        aspect_range=config.aspect_range, flip=config.flip, crop_fraction=config.crop_fraction,
        shuffle_buffer=config.shuffle_buffer, seed=config.seed + step,  # a resumed run draws a fresh, seeded order
        deterministic=config.strategy == "multi_worker",
    )


def _make_iterator(plan: Plan, train_dir, step: int):
    files = list_record_files(train_dir, plan.num_classes)
    dataset = make_dataset(files, _input_config(plan, step), training=True)
    return iter(plan.strategy.experimental_distribute_dataset(dataset))


def _train(plan: Plan, tracking: Tracking, state, manager, train_dir, out_dir: Path) -> FitResult:
    step = int(state.step.numpy())
    train_step = make_train_step(state, plan.config, plan.strategy)
    iterator = _make_iterator(plan, train_dir, step) if step < plan.total_steps else None
    metrics, last_log = {}, (step, time.perf_counter())
    while step < plan.total_steps:
        if step == plan.switch_step and step > 0:
            iterator = _make_iterator(plan, train_dir, step)  # resolution switch (224 -> 299)
        plan.peers.phase = f"step {step + 1}"
        images, targets = next(iterator)
        loss = float(train_step(images, targets, tf.constant(step, tf.int64)))
        step += 1
        if not math.isfinite(loss):
            _stop_diverged(plan, tracking, step, loss, manager)
        checkpoint_step = _is_checkpoint_step(plan, step)
        if step % plan.config.log_every_steps == 0 or checkpoint_step:
            last_log = _log_progress(plan, tracking, state, step, loss, last_log)
        if checkpoint_step:
            state.step.assign(step)
            metrics = _validate_and_save(plan, tracking, state, manager, step, loss)
    finish_together(plan.peers, plan.strategy)  # the chief's final save and registration wait on no one
    return _finish(plan, tracking, state, out_dir, step, metrics)


def _is_checkpoint_step(plan: Plan, step: int) -> bool:
    every_steps, every_epochs = plan.config.checkpoint_every_steps, plan.config.checkpoint_every_epochs
    epoch_end = bool(every_epochs) and step % (every_epochs * plan.steps_per_epoch) == 0
    return epoch_end or step == plan.total_steps or bool(every_steps and step % every_steps == 0)


def _log_progress(plan: Plan, tracking: Tracking, state, step: int, loss: float, last_log: tuple) -> tuple:
    now = time.perf_counter()
    images_per_s = (step - last_log[0]) * plan.config.batch_size / max(now - last_log[1], 1e-9)
    learning_rate = float(keras.ops.convert_to_numpy(state.optimizer.learning_rate))
    _log.info("step %d/%d loss %.4f lr %.5f %.1f images/s", step, plan.total_steps, loss, learning_rate, images_per_s)
    if plan.chief and step > tracking.log_floor:
        tracking.outbox.log_metrics({"loss": loss, "learning_rate": learning_rate, "images_per_s": images_per_s}, step)
    return step, time.perf_counter()


def _validate_and_save(plan: Plan, tracking: Tracking, state, manager, step: int, loss: float) -> dict:
    # A step's loss is computed before its update: the update itself may have broken the weights.
    if not all(bool(tf.reduce_all(tf.math.is_finite(v.value))) for v in state.model.trainable_variables):
        _stop_diverged(plan, tracking, step, float("nan"), manager, "the weights")
    metrics = {"loss": loss}
    if plan.chief:
        plan.peers.phase = f"validation at step {step}"
        size = _input_config(plan, step - 1).image_size
        validation = validate(state.model, plan.val_files, plan.config, plan.num_classes, size)
        _log.info("step %d validation %s", step, {k: round(v, 4) for k, v in validation.items()})
        metrics.update(validation)
    # Queued before the save: a kill between the two leaves the LoggedModel and its validation in the journal
    # (delivered when the same command resumes, from the checkpoint before), never a saved checkpoint without them.
    if plan.chief and step not in tracking.logged_steps:
        tracking.outbox.log_checkpoint(state.model, step, plan.config.task, tracking.spec, validation,
                                       tracking.classes_file, {EPOCH_TAG: f"{step / plan.steps_per_epoch:.2f}"})
    plan.peers.phase = f"checkpoint save at step {step}"
    manager.save(checkpoint_number=step)
    return metrics


def _stop_diverged(plan: Plan, tracking: Tracking, step: int, loss: float, manager, what: str = "loss") -> None:
    message = (f"training diverged: {what} {'are' if what != 'loss' else 'is'} {loss} at step {step}; "
               f"the last good checkpoint is kept: {manager.latest_checkpoint or 'none yet'}")
    if plan.chief:
        tracking.outbox.end_run("FAILED", {DIVERGED_TAG: str(step)})
    raise TrainingDiverged(message)


def _finish(plan: Plan, tracking: Tracking, state, out_dir: Path, step: int, metrics: dict) -> FitResult:
    model_path = out_dir / "model.keras"
    if not plan.chief:  # a worker's own checkpoints only existed so that saving ran on every worker
        shutil.rmtree(out_dir / "worker-checkpoints" / worker_id(plan.strategy), ignore_errors=True)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        state.model.save(model_path)
        summary = {"task": plan.config.task, "run_id": tracking.run_id, "step": step, "metrics": metrics}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        tracking.outbox.end_run("FINISHED")  # once everything is delivered (an outage: up to the limit)
    return FitResult(tracking.run_id, step, metrics, str(model_path), state.model)

