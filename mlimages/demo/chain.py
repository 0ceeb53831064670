"""The demo's chain of MLflow project runs: pretrain -> evaluate -> finetune (pretrained, scratch) -> evaluate.

Each step is an MLproject entry point run with the local environment, exactly what a user types
(`mlflow run . -e finetune --env-manager local -P ...`); the results are read back from the registry.
"""

from __future__ import annotations

import logging

import mlflow

from mlimages.tasks import FINETUNE, PRETRAIN
from mlimages.tracking.checkpoints import find_checkpoints, read_model_spec
from mlimages.tracking.registry import RegistryConfig
from mlimages.tracking.runs import ensure_experiment, resolve_continued_run

EXPERIMENT = "mlimages"

_log = logging.getLogger(__name__)


def run_entry_point(entry_point: str, **parameters: str) -> str:
    """`mlflow run . -e ENTRY --env-manager local -P k=v ...`; returns the id of the run that did the work.

    A training command run again resumes its earlier run (same params and output folder); the run
    just submitted then names that run in a tag, and the earlier run is returned.
    """
    shown = " ".join(f"-P {k}={v}" for k, v in parameters.items())
    _log.info("mlflow run . -e %s --env-manager local --experiment-name %s %s", entry_point, EXPERIMENT, shown)
    run_id = mlflow.projects.run(".", entry_point, parameters=parameters, env_manager="local",
                                 experiment_name=EXPERIMENT, synchronous=True).run_id
    return run_id if entry_point == "evaluate" else resolve_continued_run(run_id)


def run_demo(records: str, models: str, params: str, config: RegistryConfig,
             leaked: str = "data/dedup/leaked.tsv") -> tuple[str, str]:
    """Run every step; returns the registered names (pretrained, finetuned).

    `leaked` is the dedup stage's list: every evaluation also reports the clean score without it.
    """
    ensure_experiment(EXPERIMENT)  # the `mlflow run` calls name it; this process's active experiment stays
    ml, imagenet = f"{records}/ml-images", f"{records}/imagenet"
    pretrain = run_entry_point("pretrain", train=f"{ml}/train", val=f"{ml}/val", out=f"{models}/pretrain",
                               params=params)
    run_entry_point("evaluate", model_uri=f"runs:/{pretrain}", records=f"{ml}/val", train_records=f"{ml}/train",
                    leaked=leaked, out="reports/eval/pretrain.json", params=params)
    pretrained = registered_name(pretrain, PRETRAIN, config)
    common = {"train": f"{imagenet}/train", "val": f"{imagenet}/val", "params": params}
    runs = {
        "pretrained": run_entry_point("finetune", out=f"{models}/finetune-pretrained",
                                      init_model=f"models:/{pretrained}@champion", **common),
        "scratch": run_entry_point("finetune", out=f"{models}/finetune-scratch", init_model="scratch", **common),
    }
    for label, run in runs.items():
        run_entry_point("evaluate", model_uri=f"runs:/{run}", records=f"{imagenet}/val", leaked=leaked,
                        out=f"reports/eval/finetune-{label}.json", params=params)
    return pretrained, registered_name(runs["scratch"], FINETUNE, config)


def registered_name(run_id: str, task: str, config: RegistryConfig) -> str:
    """The registered model that holds the checkpoints of a training run (named by their depth)."""
    return config.model_name(task, read_model_spec(find_checkpoints(run_id)[-1]).depth)
