"""What a training run is made of and saves: model, optimizer, step, adaptive-loss counters.

`build_train_state` builds everything inside the distribution strategy's scope; the
`tf.train.Checkpoint` over it is what makes a SIGKILLed run resumable (same step, same optimizer
slots, same loss counters). `make_train_step` compiles one distributed SGD step.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from mlimages import losses, schedules
from mlimages.models import resnet
from mlimages.train.config import FinetuneConfig, PretrainConfig, TrainConfig

# the stem and the first two stages: the original's FixBlock2 finetuning option
FROZEN_STAGES = (0, 1)


@dataclass
class TrainState:
    """The trainable model and everything a checkpoint restores."""

    model: keras.Model
    backbone: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable  # int64, global step
    pos_counts: tf.Variable  # (classes,) c+ of the adaptive loss
    neg_counts: tf.Variable  # (classes,) c- of the adaptive loss

    def make_checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step,
                                   pos_counts=self.pos_counts, neg_counts=self.neg_counts)


def build_schedule(config: TrainConfig, total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """The learning-rate schedule named by `config.schedule`."""
    if config.schedule == "cosine":
        return schedules.CosineWithWarmup(config.base_lr, total_steps, config.warmup_steps, initial_lr=config.warmup_lr)
    return schedules.GeometricWarmupStepDecay(
        base_lr=config.base_lr, decay_steps=config.decay_steps, decay_factor=config.decay_factor,
        num_decays=config.num_decays, warmup_lr=config.warmup_lr, warmup_factor=config.warmup_factor,
        warmup_interval_steps=config.warmup_interval_steps, warmup_steps=config.warmup_steps,
    )


def build_train_state(config: TrainConfig, num_classes: int, total_steps: int,
                      init_model: str | None = None) -> TrainState:
    """Build model, optimizer (with its slots) and counters; call inside `strategy.scope()`.

    Args:
        config: the task's config.
        num_classes: width of the head.
        total_steps: length of the run (for the cosine schedule).
        init_model: finetune source whose backbone is restored (None: random initialisation).
    """
    backbone = resnet.build_backbone(config.depth, config.blocks_per_stage, bn_momentum=config.bn_momentum,
                                     width_multiplier=config.width_multiplier)
    if init_model:
        from mlimages.tracking.pretrained import restore_backbone

        restore_backbone(backbone, init_model)
    if isinstance(config, FinetuneConfig) and config.freeze_stages:
        for layer in resnet.stage_layers(backbone, FROZEN_STAGES):
            layer.trainable = False
    model = resnet.build_classifier(backbone, num_classes)
    optimizer = keras.optimizers.SGD(build_schedule(config, total_steps), momentum=config.momentum)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    first_replica = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_WRITE,
                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    return TrainState(
        model=model, backbone=backbone, optimizer=optimizer,
        step=tf.Variable(0, dtype=tf.int64, name="global_step", **first_replica),
        pos_counts=tf.Variable(tf.zeros([num_classes]), name="pos_counts", **first_replica),
        neg_counts=tf.Variable(tf.zeros([num_classes]), name="neg_counts", **first_replica),
    )


def update_counters(state: TrainState, config: PretrainConfig, targets, step) -> tf.Tensor:
    """Advance the adaptive counters on the global batch and return this step's class weights.

    The counters depend only on the label stream: each replica marks the classes positive in its
    part of the batch, an all-reduce gives the global batch's positives, and the negative sample
    is drawn from (seed, step), so every replica computes the same counters and weights.
    """
    context = tf.distribute.get_replica_context()
    local = losses.find_positive_classes(targets, config.mask_thres)  # (classes,)
    positive = tf.minimum(context.all_reduce(tf.distribute.ReduceOp.SUM, local), 1.0)
    seed = tf.stack([tf.constant(config.seed, tf.int64), tf.cast(step, tf.int64)])
    uniform = tf.random.stateless_uniform(tf.shape(positive), seed=seed)
    sample = tf.cast(uniform < config.neg_select, tf.float32)
    pos, neg = losses.update_adaptive_counters(positive[None, :], state.pos_counts, state.neg_counts, sample, 0.5)
    state.pos_counts.assign(pos)
    state.neg_counts.assign(neg)
    return losses.adaptive_class_weights(pos, neg, sample)


def compute_task_loss(config: TrainConfig, targets, logits, class_weights) -> tf.Tensor:
    """The data term of the loss for the task of `config` (mean over the replica's batch)."""
    if isinstance(config, PretrainConfig):
        if config.loss == "sigmoid":
            # The paper's normalisation (sum over classes, mean over images) with every class weight 1;
            # a mean over classes too would shrink the gradient by the number of classes.
            class_weights = tf.ones([logits.shape[-1]])
        return losses.adaptive_sigmoid_cross_entropy(targets, logits, class_weights, config.pos_weight)
    return losses.softmax_cross_entropy(targets, logits, config.label_smoothing)


def list_moving_statistics(backbone: keras.Model) -> list:
    """The moving mean/variance of every batch-norm layer that trains (frozen ones do not change)."""
    return [weight for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
            and layer.trainable for weight in (layer.moving_mean, layer.moving_variance)]


def average_across_replicas(variables: list) -> None:
    """Replace each variable by its mean over replicas (in replica context).

    Keras 3 batch norm updates its moving statistics per replica; averaging them after each step
    keeps every replica (and worker) with identical weights, as Keras 2's MEAN aggregation did.
    """
    if not variables:
        return
    context = tf.distribute.get_replica_context()
    values = context.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in variables])
    for variable, value in zip(variables, values):
        variable.assign(value)


def make_train_step(state: TrainState, config: TrainConfig, strategy: tf.distribute.Strategy):
    """A `tf.function(images, targets, step) -> loss` running one SGD step on every replica.

    Each replica's loss is divided by the number of replicas; the optimizer sums the gradients,
    so the update equals one step on the global batch. With ``config.xla`` the forward and backward
    pass is compiled by XLA (the update stays outside, where distribution needs it).
    """
    model, optimizer = state.model, state.optimizer
    decay_weights = losses.select_decay_weights(model)
    replicas = strategy.num_replicas_in_sync
    adaptive = isinstance(config, PretrainConfig) and config.loss == "adaptive"

    def compute_gradients(images, targets, class_weights):
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            logits = model(images, training=True)  # (batch, classes) float32
            loss = compute_task_loss(config, targets, logits, class_weights)
            loss = (loss + losses.compute_weight_decay(decay_weights, config.weight_decay)) / replicas
            scaled = optimizer.scale_loss(loss)
        return loss, tape.gradient(scaled, variables)

    if config.xla:
        compute_gradients = tf.function(compute_gradients, jit_compile=True)

    moving_stats = list_moving_statistics(state.backbone) if replicas > 1 else []

    def replica_step(images, targets, step):
        class_weights = update_counters(state, config, targets, step) if adaptive else tf.zeros([0])
        loss, grads = compute_gradients(images, targets, class_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        average_across_replicas(moving_stats)
        return loss

    @tf.function
    def train_step(images, targets, step):
        per_replica = strategy.run(replica_step, args=(images, targets, step))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step
