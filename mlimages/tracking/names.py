"""Every name this project writes into MLflow, in one place: tag keys, artifacts, aliases, run and model names.

Runs and LoggedModels are found again by these names (a resumed run by its key, a checkpoint by its
step, a version by the serving model that names its checkpoint), so writer and reader must agree.
"""

from __future__ import annotations

# Tags of a training run.
RUN_KEY_TAG = "mlimages.run_key"  # hash of params + output folder: the same command resumes the run
TASK_TAG = "mlimages.task"  # "pretrain", "finetune" or "evaluate" (also on LoggedModels and versions)
EVALUATE_TASK = "evaluate"  # the task tag of evaluation runs
INIT_MODEL_TAG = "mlimages.init_model"  # the finetune source, an alias pinned to its version
TOTAL_STEPS_TAG = "mlimages.total_steps"
DIVERGED_TAG = "mlimages.diverged_at_step"
CONTINUED_IN_TAG = "mlimages.continued_in"  # on an `mlflow run` run whose work went to a resumed run
DATA_VERSION_TAG = "mlimages.data_version"  # digest of dvc.lock (mlimages.tracking.lineage)
VERSION_LINEAGE_TAGS = ("git_commit", DATA_VERSION_TAG)  # the run tags copied onto registered versions

# Tags of LoggedModels.
STEP_TAG = "mlimages.step"  # a training checkpoint's global step (also on the serving model built from it)
EPOCH_TAG = "mlimages.epoch"
CLASSES_FILE_TAG = "mlimages.classes_file"  # artifact path of classes.tsv in the run
SERVING_TAG = "mlimages.serving"  # "true" on the pyfunc built from a checkpoint
CHECKPOINT_TAG = "mlimages.checkpoint"  # on a serving model: the checkpoint LoggedModel (or file:NAME) it is from

# Tags of registered versions: only what a person reads on the versions page. The links to the
# serving LoggedModel (the version's source), its checkpoint and training run are MLflow's own
# (`version.source`, the serving model's tags, `version.run_id`), read by mlimages.tracking.versions.
TRAINING_DATA_TAG = "mlimages.training_data"
EVAL_PREFIX = "eval."  # eval.<metric> and eval.protocol
PROTOCOL_TAG = EVAL_PREFIX + "protocol"

# Aliases, artifact paths, LoggedModel names.
CANDIDATE = "candidate"
CHAMPION = "champion"
CLASSES_ARTIFACT_DIR = "classes"
LINEAGE_ARTIFACT = "lineage/data_versions.json"  # every DVC output's md5, logged in each training run


def checkpoint_name(step: int) -> str:
    """The LoggedModel name of the checkpoint at `step`: the models list then reads as a timeline."""
    return f"checkpoint-step-{step}"


def serving_name(step: int) -> str:
    return f"serving-step-{step}"


def pretrain_run_name(depth: int, width_multiplier: float) -> str:
    """``pretrain-resnet50-w0.25``: what a pretraining run trains."""
    return f"pretrain-resnet{depth}-w{float(width_multiplier)}"


def finetune_run_name(pinned_source: str | None) -> str:
    """``finetune-scratch``, ``finetune-from-ml-v2`` (models:/mlimages-resnet50-ml/2) or ``finetune-from-<file>``."""
    if not pinned_source:
        return "finetune-scratch"
    registered = not pinned_source.removeprefix("models:/").startswith("m-")
    if pinned_source.startswith("models:/") and pinned_source.count("/") == 2 and registered:
        name, version = pinned_source.removeprefix("models:/").split("/")
        return f"finetune-from-{name.rsplit('-', 1)[-1]}-v{version}"
    return f"finetune-from-{pinned_source.rstrip('/').rsplit('/', 1)[-1]}"


def evaluate_run_name(name: str, versions: list[str]) -> str:
    """``evaluate-mlimages-resnet50-imagenet-v3`` (``-v3-v4`` when a run's checkpoints gave two versions)."""
    return f"evaluate-{name}-" + "-".join(f"v{v}" for v in versions)


def describe_source(pinned_source: str | None) -> str:
    """The short training-data lineage of a finetune: ``from mlimages-resnet50-ml v2`` or ``from scratch``."""
    if not pinned_source:
        return "from scratch"
    if pinned_source.startswith("models:/") and pinned_source.count("/") == 2:
        name, version = pinned_source.removeprefix("models:/").split("/")
        return f"from {name} v{version}"
    return f"from {pinned_source}"
