"""The `pretrain:` and `finetune:` sections of params.yaml, as frozen dataclasses.

Both tasks share `TrainConfig` (network, duration, optimizer, schedule, input, precision,
distribution, logging); `PretrainConfig` adds the adaptive loss settings, `FinetuneConfig` the
label smoothing, stage freezing and the late switch to a larger resolution. The config class is
the one source of the task: `fit` reads it from ``config.task``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

from mlimages.config import DEFAULT_PARAMS
from mlimages.errors import InputError
from mlimages.tasks import FINETUNE, PRETRAIN


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings common to pretraining and finetuning.

    Attributes:
        depth: ResNet depth, 50, 101 or 152.
        blocks_per_stage: block counts overriding `depth` (cut-down networks for tests only).
        width_multiplier: scales every layer's channels (1.0 = the paper's network).
        bn_momentum: decay of the batch-norm moving statistics (0.997 in the paper; short runs
            need a smaller value, or the statistics used at evaluation are still near their init).
        image_size: training crop side in pixels.
        batch_size: global batch size (split over devices and workers).
        steps / epochs: duration; exactly one is set (an epoch is count // batch_size steps).
        schedule: ``paper`` (geometric warmup + step decay) or ``cosine`` (linear warmup).
        base_lr: rate after warmup (paper) or peak rate (cosine).
        warmup_lr, warmup_factor, warmup_interval_steps, warmup_steps: the warmup.
        decay_steps, decay_factor, num_decays: the paper schedule's step decay.
        momentum: SGD momentum.
        weight_decay: L2 factor on every weight but batch-norm ones.
        area_range, aspect_range, flip: random training crops.
        crop_fraction: centre crop fraction of validation.
        shuffle_buffer: training shuffle buffer (examples).
        seed: seed of data order, crops and negative sampling.
        precision: ``float32``, ``mixed_float16`` (with loss scaling) or ``mixed_bfloat16``.
        xla: compile the forward and backward pass with XLA.
        strategy: ``default`` (one device), ``mirrored`` (all local devices),
            ``multi_worker`` (cluster from the TF_CONFIG environment variable).
        log_every_steps: loss, learning rate and images/s are logged this often.
        checkpoint_every_epochs: validate and checkpoint at every this many epoch ends (0: never;
            the last step always gets one).
        checkpoint_every_steps: also validate and checkpoint every this many steps (0: off).
        keep_checkpoints: how many checkpoints are kept on disk.
        worker_timeout_s: ``multi_worker`` only: a worker silent for this long counts as lost and
            every other worker stops, whatever it is doing, at most twice this long after the lost
            worker's last sign of life (see `peers`).
        worker_start_timeout_s: ``multi_worker`` only: every worker must have joined this long after
            a worker starts, or that worker stops (the hosts of a cluster are started one by one).
        val_examples: size of the validation subset evaluated at each epoch end.
        val_batch_size: batch size of validation.
        experiment: MLflow experiment name.
    """

    depth: int
    blocks_per_stage: tuple[int, ...] | None
    width_multiplier: float
    bn_momentum: float
    image_size: int
    batch_size: int
    steps: int | None
    epochs: int | None
    schedule: Literal["paper", "cosine"]
    base_lr: float
    warmup_lr: float
    warmup_factor: float
    warmup_interval_steps: int
    warmup_steps: int
    decay_steps: int
    decay_factor: float
    num_decays: int
    momentum: float
    weight_decay: float
    area_range: tuple[float, float]
    aspect_range: tuple[float, float]
    flip: bool
    crop_fraction: float
    shuffle_buffer: int
    seed: int
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"]
    xla: bool
    strategy: Literal["default", "mirrored", "multi_worker"]
    log_every_steps: int
    checkpoint_every_epochs: int
    checkpoint_every_steps: int
    keep_checkpoints: int
    worker_timeout_s: int
    worker_start_timeout_s: int
    val_examples: int
    val_batch_size: int
    experiment: str

    task: ClassVar[str]

    def __post_init__(self) -> None:
        """Exactly one of `steps` and `epochs` is set, and positive."""
        where = f"{DEFAULT_PARAMS}: {self.task}"
        if (self.steps is None) == (self.epochs is None):
            raise InputError("set exactly one of 'steps' and 'epochs'", where)
        if (self.steps if self.steps is not None else self.epochs) < 1:
            raise InputError("the training duration must be >= 1", where)

    def size_switch(self) -> tuple[int, int]:
        """(last epochs trained at a larger size, that size); this task keeps `image_size` throughout."""
        return 0, self.image_size


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(TrainConfig):
    """Multi-label pretraining with the paper's adaptive loss.

    Attributes:
        loss: ``adaptive`` (the paper's re-weighted loss) or ``sigmoid`` (the same sum over classes
            with every class weight 1: plain sigmoid cross-entropy, for comparison and small worlds).
        pos_weight: weight of positive labels (eta, 12).
        mask_thres: confidence from which a label counts as positive for the counters (tau, 0.7).
        neg_select: probability that an absent class is trained as a negative in a step (q).
    """

    task: ClassVar[str] = PRETRAIN

    loss: Literal["adaptive", "sigmoid"]
    pos_weight: float
    mask_thres: float
    neg_select: float


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainConfig):
    """Single-label finetuning from a pretrained backbone (or from scratch).

    Attributes:
        label_smoothing: epsilon of the softmax cross-entropy.
        freeze_stages: freeze the stem and the first two stages (the original's FixBlock2).
        final_size: training size of the last `final_size_epochs` epochs (the paper's 224 -> 299).
        final_size_epochs: how many final epochs train at `final_size` (0: never switch).
    """

    task: ClassVar[str] = FINETUNE

    label_smoothing: float
    freeze_stages: bool
    final_size: int
    final_size_epochs: int

    def size_switch(self) -> tuple[int, int]:
        return self.final_size_epochs, self.final_size


# Bounds on waiting for other hosts: they decide when a run gives up, not what it trains. Left out of
# the run key and the logged params, so raising one to get past a slow network resumes the same run.
WAIT_BOUNDS = ("worker_timeout_s", "worker_start_timeout_s")


def run_defining_params(config: TrainConfig) -> dict:
    """The config's fields that define a run: every field but `WAIT_BOUNDS`."""
    return {key: value for key, value in asdict(config).items() if key not in WAIT_BOUNDS}


def count_total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """The run's length in steps, from `steps` or `epochs`."""
    return config.steps if config.steps is not None else config.epochs * steps_per_epoch


def find_size_switch_step(config: TrainConfig, steps_per_epoch: int, total_steps: int) -> int:
    """First step trained at `final_size` (== total_steps when there is no switch)."""
    epochs, _ = config.size_switch()
    if not epochs:
        return total_steps
    return max(0, total_steps - epochs * steps_per_epoch)


def parse_overrides(arguments: list[str]) -> dict[str, str]:
    """Extra command-line arguments ``--KEY VALUE`` / ``--KEY=VALUE`` -> ``{KEY: VALUE}``.

    `mlflow run -P KEY=VALUE` passes parameters the MLproject does not declare this way; the values
    are parsed as YAML scalars by `load_params`, and unknown keys are an error there.
    """
    overrides, items = {}, list(arguments)
    while items:
        item = items.pop(0)
        if not item.startswith("--") or len(item) < 3:
            raise InputError(f"expected --KEY VALUE, got {item!r}", "command line")
        key, has_value, value = item[2:].partition("=")
        if not has_value:
            if not items:
                raise InputError(f"no value for {item}", "command line")
            value = items.pop(0)
        overrides[key.replace("-", "_")] = value
    return with_one_duration(overrides)


def with_one_duration(overrides: dict[str, str]) -> dict[str, str]:
    """`steps` and `epochs` replace each other: overriding one alone sets the other to null, so
    ``-P steps=200`` works whichever of the two the params file sets."""
    for given, other in (("steps", "epochs"), ("epochs", "steps")):
        if given in overrides and other not in overrides:
            return {**overrides, other: "null"}
    return overrides
