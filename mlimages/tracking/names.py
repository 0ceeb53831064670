"""Every name this project writes into MLflow, in one place: tag keys, prefixes, artifacts, aliases.

Runs, LoggedModels and registered versions are found again by these names (a resumed run by its
key, a checkpoint by its step, a version by its checkpoint), so writer and reader must agree.
"""

from __future__ import annotations

# Tags of a training run.
RUN_KEY_TAG = "mlimages.run_key"  # hash of params + output folder: the same command resumes the run
TASK_TAG = "mlimages.task"  # "pretrain" or "finetune" (also on LoggedModels and versions)
INIT_MODEL_TAG = "mlimages.init_model"  # the finetune source, an alias pinned to its version
TOTAL_STEPS_TAG = "mlimages.total_steps"
DIVERGED_TAG = "mlimages.diverged_at_step"
CONTINUED_IN_TAG = "mlimages.continued_in"  # on an `mlflow run` run whose work went to a resumed run
LINEAGE_PREFIXES = ("git_", "data.")  # git commit and DVC data hashes, copied onto versions

# Tags of LoggedModels.
STEP_TAG = "mlimages.step"  # marks a training checkpoint, at its global step
EPOCH_TAG = "mlimages.epoch"
CLASSES_FILE_TAG = "mlimages.classes_file"  # artifact path of classes.tsv in the run
SERVING_TAG = "mlimages.serving"  # "true" on the pyfunc built from a checkpoint

# Tags of registered versions.
CHECKPOINT_TAG = "mlimages.checkpoint"  # the checkpoint LoggedModel a version was built from
SERVING_MODEL_TAG = "mlimages.serving_model"
RUN_ID_TAG = "mlimages.run_id"
TRAINING_DATA_TAG = "mlimages.training_data"
EVAL_PREFIX = "eval."  # eval.<metric> and eval.protocol
PROTOCOL_TAG = EVAL_PREFIX + "protocol"

# Aliases, artifact paths, LoggedModel names.
CANDIDATE = "candidate"
CHAMPION = "champion"
CHECKPOINT_NAME = "checkpoint"
CLASSES_ARTIFACT_DIR = "classes"
