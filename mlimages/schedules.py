"""Learning-rate schedules, as serializable Keras schedules (saved inside `.keras` checkpoints).

`GeometricWarmupStepDecay` is the released pretraining script's schedule: 0.01 multiplied by 1.297
every 4,400 steps while step < 35,200 (reaching ~0.08), then 0.08 multiplied by 0.1 every 110,000
steps counted from step 0, at most four times. With `warmup_steps=0` it is the finetuning schedule
(0.1, x0.1 every 150,000 steps). `CosineWithWarmup` is the usual linear warmup then cosine decay.
Both use keras.ops only, so they run under any backend.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mlimages")
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

    def __init__(
        self,
        base_lr: float = 0.08,
        decay_steps: int = 110_000,
        decay_factor: float = 0.1,
        num_decays: int = 4,
        warmup_lr: float = 0.01,
        warmup_factor: float = 1.297,
        warmup_interval_steps: int = 4_400,
        warmup_steps: int = 35_200,
    ):
        self.base_lr = float(base_lr)
        self.decay_steps = int(decay_steps)
        self.decay_factor = float(decay_factor)
        self.num_decays = int(num_decays)
        self.warmup_lr = float(warmup_lr)
        self.warmup_factor = float(warmup_factor)
        self.warmup_interval_steps = max(1, int(warmup_interval_steps))
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup_power = ops.floor(step / self.warmup_interval_steps)
        warmup = self.warmup_lr * ops.power(self.warmup_factor, warmup_power)
        decays = ops.clip(ops.ceil(step / self.decay_steps) - 1.0, 0.0, float(self.num_decays))
        decayed = self.base_lr * ops.power(self.decay_factor, decays)
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self) -> dict:
        return {
            "base_lr": self.base_lr,
            "decay_steps": self.decay_steps,
            "decay_factor": self.decay_factor,
            "num_decays": self.num_decays,
            "warmup_lr": self.warmup_lr,
            "warmup_factor": self.warmup_factor,
            "warmup_interval_steps": self.warmup_interval_steps,
            "warmup_steps": self.warmup_steps,
        }


@keras.saving.register_keras_serializable(package="mlimages")
class CosineWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from `initial_lr` to `peak_lr`, then cosine decay to `final_lr` at `total_steps`.

    Args:
        peak_lr: rate at the end of warmup.
        total_steps: step at which the rate reaches `final_lr` (and stays).
        warmup_steps: length of the linear warmup (0: start at `peak_lr`).
        initial_lr: rate at step 0 of the warmup.
        final_lr: rate at and after `total_steps`.
    """

    def __init__(
        self,
        peak_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        initial_lr: float = 0.0,
        final_lr: float = 0.0,
    ):
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.initial_lr = float(initial_lr)
        self.final_lr = float(final_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup_fraction = step / max(1, self.warmup_steps)
        warmup = self.initial_lr + (self.peak_lr - self.initial_lr) * warmup_fraction
        decay_length = max(1, self.total_steps - self.warmup_steps)
        progress = ops.clip((step - self.warmup_steps) / decay_length, 0.0, 1.0)
        cosine = self.final_lr + (self.peak_lr - self.final_lr) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self) -> dict:
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "initial_lr": self.initial_lr,
            "final_lr": self.final_lr,
        }
