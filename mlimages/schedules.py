"""Learning-rate schedules, as serializable Keras schedules (saved inside `.keras` checkpoints).

`GeometricWarmupStepDecay` is the released pretraining script's schedule: 0.01 multiplied by 1.297
every 4,400 steps while step < 35,200 (reaching ~0.08), then 0.08 multiplied by 0.1 every 110,000
steps counted from step 0, at most four times. With `warmup_steps=0` it is the finetuning schedule
(0.1, x0.1 every 150,000 steps). `CosineWithWarmup` is the usual linear warmup then cosine decay.
Both use keras.ops only, so they run under any backend. Each is a dataclass of its arguments, so
`get_config` (what a `.keras` file stores) is the arguments themselves.
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mlimages")
@dataclasses.dataclass(eq=False)
class GeometricWarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Staircase geometric warmup, then staircase step decay (the original's two TF1 schedules).

    For step < warmup_steps: warmup_lr * warmup_factor ** floor(step / warmup_interval_steps)
    (TF1 `exponential_decay(..., staircase=True)`). Afterwards base_lr * decay_factor ** n with n the
    number of boundaries k * decay_steps (k = 1..num_decays) strictly below step (TF1 `piecewise_constant`).

    Args:
        base_lr: rate after warmup (0.08).
        decay_steps: distance between decays, counted from step 0 (110,000).
        decay_factor: multiplier at each decay (0.1).
        num_decays: how many decays happen at most (4 in the original).
        warmup_lr: first warmup rate (0.01).
        warmup_factor: warmup multiplier (1.297).
        warmup_interval_steps: steps between warmup multiplications (4,400).
        warmup_steps: end of warmup (35,200); 0 disables it.
    """

    base_lr: float = 0.08
    decay_steps: int = 110_000
    decay_factor: float = 0.1
    num_decays: int = 4
    warmup_lr: float = 0.01
    warmup_factor: float = 1.297
    warmup_interval_steps: int = 4_400
    warmup_steps: int = 35_200

    def __post_init__(self) -> None:
        coerce_fields(self)
        self.warmup_interval_steps = max(1, self.warmup_interval_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup_power = ops.floor(step / self.warmup_interval_steps)
        warmup = self.warmup_lr * ops.power(self.warmup_factor, warmup_power)
        decays = ops.clip(ops.ceil(step / self.decay_steps) - 1.0, 0.0, float(self.num_decays))
        decayed = self.base_lr * ops.power(self.decay_factor, decays)
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)


@keras.saving.register_keras_serializable(package="mlimages")
@dataclasses.dataclass(eq=False)
class CosineWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from `initial_lr` to `peak_lr`, then cosine decay to `final_lr` at `total_steps`.

    Args:
        peak_lr: rate at the end of warmup.
        total_steps: step at which the rate reaches `final_lr` (and stays).
        warmup_steps: length of the linear warmup (0: start at `peak_lr`).
        initial_lr: rate at step 0 of the warmup.
        final_lr: rate at and after `total_steps`.
    """

    peak_lr: float
    total_steps: int
    warmup_steps: int = 0
    initial_lr: float = 0.0
    final_lr: float = 0.0

    def __post_init__(self) -> None:
        coerce_fields(self)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup_fraction = step / max(1, self.warmup_steps)
        warmup = self.initial_lr + (self.peak_lr - self.initial_lr) * warmup_fraction
        decay_length = max(1, self.total_steps - self.warmup_steps)
        progress = ops.clip((step - self.warmup_steps) / decay_length, 0.0, 1.0)
        cosine = self.final_lr + (self.peak_lr - self.final_lr) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)


def coerce_fields(schedule) -> None:
    """Store every argument as its declared type (int or float), whatever number type the caller passed."""
    for field in dataclasses.fields(schedule):
        setattr(schedule, field.name, {"int": int, "float": float}[field.type](getattr(schedule, field.name)))
