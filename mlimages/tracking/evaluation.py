"""Evaluate registered versions and record the results in MLflow and the registry.

The numbers come from the pure protocol (`mlimages.evaluate.evaluate_records`); this module only
decides which versions to evaluate and where each result goes: the evaluation run (metrics at
the checkpoint's step, once; the run is named after the versions), the serving LoggedModel (the
UI's model view compares them), the version's tags and model card, the `champion` alias, and a
JSON file.

With the dedup stage's ``leaked.tsv``, each version also gets a clean score (``*_clean``): the
evaluation images with a copy in the pretraining data are left out (on the version's tags only
when some image was). Which list applies follows the task: ML-Images val for a pretrained tagger,
the finetune val set for a finetuned classifier (whose backbone saw the pretraining data; a model
from scratch gets it too, so the two compare on one set).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import mlflow
import numpy as np

from mlimages.dedup.outputs import load_leaked_names
from mlimages.dedup.stage import FINETUNE_VAL, ML_IMAGES_VAL
from mlimages.errors import InputError
from mlimages.evaluate import EvaluateConfig, evaluate_records
from mlimages.tasks import FINETUNE, PRETRAIN
from mlimages.tracking.champion import record_evaluation
from mlimages.tracking.names import PROTOCOL_TAG, evaluate_run_name
from mlimages.tracking.pretrained import load_source_model
from mlimages.tracking.registry import RegistryConfig, register_checkpoints
from mlimages.tracking.runs import log_dataset_input
from mlimages.tracking.versions import names_checkpoints, read_version_source, resolve_versions

DEFAULT_RECORDS = {PRETRAIN: "data/tfrecords/ml-images/val", FINETUNE: "data/tfrecords/imagenet/val"}
DEFAULT_LEAKED = "data/dedup/leaked.tsv"
LEAKED_EVAL_SET = {PRETRAIN: ML_IMAGES_VAL, FINETUNE: FINETUNE_VAL}

_log = logging.getLogger(__name__)


def find_leaked_file(path: str) -> Path | None:
    """The dedup stage's leaked-images list to score without, or None for no clean score.

    The default path is optional (a data pipeline without the dedup stage still evaluates, and the
    log says why there is no clean score); any other path the user named must exist.
    """
    if not path:
        _log.info("no leaked-images list given: no clean score")
        return None
    if Path(path).is_file():
        return Path(path)
    if path == DEFAULT_LEAKED:
        _log.warning("no clean score: %s not found (run the dedup stage: dvc repro dedup)", path)
        return None
    raise InputError("leaked-images list not found (the dedup stage writes data/dedup/leaked.tsv)", path)


def evaluate_uri(model_uri: str, config: EvaluateConfig, registry_config: RegistryConfig,
                 records: str | None = None, trainable=None, leaked: Path | None = None) -> list[dict]:
    """Evaluate every version `model_uri` names, inside the active MLflow run.

    Args:
        model_uri: checkpoints to register first (``runs:/RUN_ID``, a checkpoint's ``models:/m-ID``)
            or registered versions (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, a serving model).
        config: evaluation settings.
        registry_config: names and champion metrics.
        records: record folder; default by task (`DEFAULT_RECORDS`).
        trainable: trainable class indices for multi-label metrics, or None.
        leaked: the dedup stage's ``leaked.tsv`` (adds the clean score), or None.

    Returns:
        One dict per version: name, version, step, task, records, protocol, metrics, champion.
    """
    if names_checkpoints(model_uri):
        versions = register_checkpoints(model_uri, registry_config)
    else:
        versions = resolve_versions(model_uri)
    results = []
    for version in versions:
        results.append(evaluate_version(version, config, registry_config, records, trainable, leaked))
        shown = {k: round(v, 4) for k, v in results[-1]["metrics"].items() if not k.startswith("classes_")}
        _log.info("%s version %s: %s", version.name, version.version, shown)
    if results and mlflow.active_run():  # the run is named after what it evaluated
        names = "+".join(sorted({r["name"] for r in results}))
        mlflow.MlflowClient().update_run(mlflow.active_run().info.run_id,
                                         name=evaluate_run_name(names, [str(r["version"]) for r in results]))
    return results


def evaluate_version(version, config: EvaluateConfig, registry_config: RegistryConfig, records: str | None,
                     trainable, leaked: Path | None = None) -> dict:
    """Evaluate one ModelVersion and record the results everywhere (see the module docstring)."""
    source = read_version_source(mlflow.MlflowClient(), version)
    task, step = source.task, source.step or 0
    folder = records or DEFAULT_RECORDS[task]
    model = load_source_model(f"models:/{version.name}/{version.version}")
    exclude = load_leaked_names(leaked, LEAKED_EVAL_SET[task]) if leaked else None
    values, protocol, count = evaluate_records(model, folder, config, trainable if task == PRETRAIN else None, exclude)
    if leaked:
        protocol += f" ({LEAKED_EVAL_SET[task]} in {leaked})"
    finite = {k: v for k, v in values.items() if np.isfinite(v)}
    # Once per step, linked to the version's own (serving) LoggedModel: each log_metrics call adds
    # a history entry to the run, so linking the checkpoint too would log every metric twice.
    mlflow.log_metrics({f"eval_{k}": v for k, v in finite.items()}, step=step,
                       model_id=source.model_id if source.model_id.startswith("m-") else None)
    mlflow.set_tags({f"evaluated.{version.name}": str(version.version), PROTOCOL_TAG: protocol})
    log_dataset_input(folder, context="eval")
    champion = record_evaluation(version.name, version.version, finite, protocol,
                                 registry_config.champion_metric(task))
    return {"name": version.name, "version": int(version.version), "step": step, "task": task, "records": str(folder),
            "images": count, "protocol": protocol, "metrics": values, "champion": champion}


def write_results(results: list[dict], model_uri: str, path: str | Path) -> None:
    """The JSON metrics file (a DVC/CI-friendly copy of what went to MLflow); NaN becomes null."""

    def finite(value):
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return None if isinstance(value, float) and math.isnan(value) else value

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(finite({"model_uri": model_uri, "results": results}), indent=2)
    Path(path).write_text(text + "\n", encoding="utf-8")
