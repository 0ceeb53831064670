"""The model registry: every kept checkpoint becomes a version of one of two registered models.

`mlimages-resnet{depth}-ml` holds the multi-label pretrained checkpoints and
`mlimages-resnet{depth}-imagenet` the finetuned ones (names from params `registry:`). A version is
the serving pyfunc (`mlimages.tracking.serving`) built from a Keras checkpoint LoggedModel, logged in the
checkpoint's own training run at its step, so the version records its run, step, params and
metrics. The version's tags are only what a person reads (training data, git commit, data version,
then the metrics evaluation adds); its links are MLflow's own: source = the serving model, whose
tags name the checkpoint, step and task (`mlimages.tracking.versions`), and run_id. Each new version
takes the alias `candidate`; `champion` moves only after an evaluation beats the current champion
on the metric named in params (`mlimages.tracking.champion`). Stages are never used. A function
that registers says so in its name; `mlimages.tracking.versions` only looks versions up.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from mlimages.config import load_params
from mlimages.errors import InputError
from mlimages.records.index import CLASSES_FILE
from mlimages.tasks import FINETUNE, PRETRAIN
from mlimages.tracking.checkpoints import find_checkpoints, read_model_spec
from mlimages.tracking.model_card import refresh_model_card
from mlimages.tracking.names import (
    CANDIDATE, CHECKPOINT_TAG, CLASSES_FILE_TAG, INIT_MODEL_TAG, SERVING_TAG, STEP_TAG, TASK_TAG, TRAINING_DATA_TAG,
    VERSION_LINEAGE_TAGS, describe_source, serving_name,
)
from mlimages.tracking.registry_config import RegistryConfig
from mlimages.tracking.serving_code import log_serving_model

_log = logging.getLogger(__name__)


def register_run_checkpoints(run_id: str, config: RegistryConfig) -> list:
    """Register every kept checkpoint of `run_id` not registered yet; returns all their versions."""
    checkpoints = find_checkpoints(run_id)
    if not checkpoints:
        raise InputError(f"the run logged no checkpoint (LoggedModel with tag {STEP_TAG})", f"runs:/{run_id}")
    return [register_checkpoint(checkpoint.model_id, config) for checkpoint in checkpoints]


def register_checkpoint(checkpoint_id: str, config: RegistryConfig):
    """Register the Keras checkpoint LoggedModel `checkpoint_id` as a serving version (idempotent).

    Returns:
        The ModelVersion (an existing one when this checkpoint was registered before).
    """
    from mlimages.tracking.pretrained import load_source_model

    client = mlflow.MlflowClient()
    checkpoint = client.get_logged_model(checkpoint_id)
    task, spec = checkpoint.tags.get(TASK_TAG, FINETUNE), read_model_spec(checkpoint)
    run = client.get_run(checkpoint.source_run_id)
    name = config.model_name(task, spec.depth)
    existing = find_version(name, checkpoint)
    if existing is not None:
        return existing
    step = int(checkpoint.tags.get(STEP_TAG, 0))
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "model.keras"
        model = load_source_model(f"models:/{checkpoint_id}")
        model.save(model_file)
        classes = fetch_classes_file(run.info.run_id, checkpoint.tags.get(CLASSES_FILE_TAG), tmp,
                                     model.output_shape[-1])
        serving = log_serving_model(model_file, classes, config.serving(task, spec.crop_fraction),
                                    run_id=run.info.run_id, step=step, name=serving_name(step),
                                    tags={SERVING_TAG: "true", CHECKPOINT_TAG: checkpoint_id, TASK_TAG: task,
                                          STEP_TAG: str(step)})
    tags = {TRAINING_DATA_TAG: training_data(run)}
    tags.update({k: run.data.tags[k] for k in VERSION_LINEAGE_TAGS if k in run.data.tags})
    return create_version(name, serving.model_id, run.info.run_id, tags, checkpoint_id)


def create_version(name: str, serving_model_id: str, run_id: str | None, tags: dict[str, str],
                   checkpoint_id: str | None = None):
    """Create the version, set its model card and make it the `candidate`.

    Args:
        name: registered model name.
        serving_model_id: the serving LoggedModel, the version's source.
        run_id: the training run.
        tags: the version's tags (what a person reads; links stay on the serving model).
        checkpoint_id: the checkpoint LoggedModel the serving model was built from, also marked registered.
    """
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name, description=f"ResNet checkpoints of mlimages ({name}).")
    except MlflowException as error:
        if "already exists" not in str(error).lower() and "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
            raise
    version = client.create_model_version(name, source=f"models:/{serving_model_id}", run_id=run_id,
                                          tags=tags, model_id=serving_model_id)
    link_logged_models(name, version.version, [serving_model_id, checkpoint_id or ""])
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    refresh_model_card(name, version.version)
    _log.info("registered %s version %s (serving model %s)", name, version.version, serving_model_id)
    return client.get_model_version(name, version.version)


def link_logged_models(name: str, version: str, model_ids: list[str]) -> None:
    """Tag the LoggedModels a version was built from with it, as `mlflow.register_model` does.

    The SQL registry does not return a version's `model_id`; the LoggedModel page decides
    "Registered" from this tag, so without it the serving model and its checkpoint say "Not registered".
    """
    client = mlflow.MlflowClient()
    for model_id in filter(lambda m: m.startswith("m-"), model_ids):
        listed = json.loads(client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
        entry = {"name": name, "version": int(version)}
        if entry not in listed:
            client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(listed + [entry])})


def find_version(name: str, checkpoint):
    """The version of `name` built from the checkpoint LoggedModel `checkpoint`, or None.

    Found through MLflow's links: the serving models whose tag names the checkpoint, then the
    version whose source is one of them (a serving model logged by a registration that stopped
    before creating its version is simply not the source of any).
    """
    client = mlflow.MlflowClient()
    servings = mlflow.search_logged_models(
        experiment_ids=[checkpoint.experiment_id], filter_string=f"tags.`{CHECKPOINT_TAG}` = '{checkpoint.model_id}'",
        output_format="list")
    for serving in servings:
        found = client.search_model_versions(f"name = '{name}' AND source_path = 'models:/{serving.model_id}'")
        if found:
            return found[0]
    return None


def training_data(run) -> str:
    """The short lineage of a run's training data.

    A finetune says where its backbone came from (``from mlimages-resnet50-ml v2``, ``from scratch``);
    a pretraining run names its training records (``ml-images/train@1a2b3c4d``). The record
    digests of every run stay on the run (dataset inputs) and the data version on the version.
    """
    if run.data.params.get("task") == FINETUNE:
        param = run.data.params.get("init_model")
        return describe_source(run.data.tags.get(INIT_MODEL_TAG) or (None if param in (None, "", "scratch") else param))
    inputs = getattr(run.inputs, "dataset_inputs", None) or []
    names = [f"{d.dataset.name}@{(d.dataset.digest or '')[:8]}" for d in inputs
             if any(t.key == "mlflow.data.context" and t.value in ("train", "training") for t in d.tags)]
    return ", ".join(names) or "unknown"


def fetch_classes_file(run_id: str, artifact_path: str | None, folder: str, num_classes: int) -> Path:
    """The run's classes.tsv; without one, a file of index names (so serving still answers)."""
    if artifact_path:
        try:
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                            dst_path=folder))
        except (MlflowException, OSError) as error:
            _log.warning("classes file %s of run %s not found (%s)", artifact_path, run_id, error)
    _log.warning("run %s has no classes file: class names will be indices", run_id)
    return write_index_classes(Path(folder) / CLASSES_FILE, num_classes)


def write_index_classes(path: Path, num_classes: int) -> Path:
    """A classes.tsv whose names are the indices (for models that come without names)."""
    path.write_text("".join(f"{i}\tclass_{i}\t{i}\n" for i in range(num_classes)), encoding="utf-8")
    return path


# A Keras file registered on its own carries no training spec: it is served with the centre crop
# of the released checkpoints' evaluation (224 of 256).
IMPORTED_CROP_FRACTION = 0.875


def register_keras_model(model_path: str | Path, name: str, classes_file: str | Path | None = None,
                         task: str | None = None, config: RegistryConfig | None = None):
    """Register a Keras classifier file (e.g. an imported TF1 checkpoint) as a new serving version.

    Args:
        model_path: a ``.keras`` file of a classifier (logits).
        name: registered model name.
        classes_file: classes.tsv for names; without it names are the class indices.
        task: ``"pretrain"`` (multi-label) or ``"finetune"``; default from the name (``-ml`` suffix).
        config: the `registry:` params; default: those of ./params.yaml.

    Returns:
        The new ModelVersion (alias `candidate`).
    """
    from mlimages.tracking.pretrained import load_source_model
    from mlimages.tracking.lineage import lineage_tags
    from mlimages.tracking.runs import configure_tracking

    if not mlflow.tracking.is_tracking_uri_set():
        configure_tracking()  # the project's store (sqlite:///mlflow.db), not MLflow's ./mlruns default
    config = config or load_params("registry", RegistryConfig)
    task = task or (PRETRAIN if name.endswith("-ml") else FINETUNE)
    model = load_source_model(str(model_path))
    with tempfile.TemporaryDirectory() as tmp:
        if classes_file is None:
            classes_file = write_index_classes(Path(tmp) / CLASSES_FILE, model.output_shape[-1])
        with mlflow.start_run(run_name=f"register {Path(model_path).name}") as run:
            mlflow.set_tags({**lineage_tags(), TASK_TAG: task})
            mlflow.log_params({"source": str(model_path), "task": task})
            serving = log_serving_model(
                model_path, classes_file, config.serving(task, IMPORTED_CROP_FRACTION), run_id=run.info.run_id,
                name="serving", tags={SERVING_TAG: "true", TASK_TAG: task, STEP_TAG: "0",
                                      CHECKPOINT_TAG: f"file:{Path(model_path).name}"})
    lineage = lineage_tags()
    tags = {TRAINING_DATA_TAG: "imported", **{k: lineage[k] for k in VERSION_LINEAGE_TAGS}}
    return create_version(name, serving.model_id, run.info.run_id, tags)


def register_checkpoints(uri: str, config: RegistryConfig) -> list:
    """Register the checkpoints `uri` names (idempotent) and return their versions.

    Args:
        uri: ``runs:/RUN_ID`` or a bare run id (every checkpoint of a training run), or
            ``models:/m-ID`` of one checkpoint LoggedModel.
        config: the `registry:` params; default: those of ./params.yaml.
    """
    client = mlflow.MlflowClient()
    try:
        if uri.startswith("models:/m-"):
            checkpoint = client.get_logged_model(uri.removeprefix("models:/").split("/")[0])
            return [register_checkpoint(checkpoint.model_id, config)]
        return register_run_checkpoints(uri.removeprefix("runs:/").split("/")[0], config)
    except MlflowException as error:
        raise InputError(f"no such run or checkpoint ({str(error).splitlines()[0]})", uri) from None

