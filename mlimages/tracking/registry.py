"""The model registry: every kept checkpoint becomes a version of one of two registered models.

`mlimages-resnet{depth}-ml` holds the multi-label pretrained checkpoints and
`mlimages-resnet{depth}-imagenet` the finetuned ones (names from params `registry:`). A version is
the serving pyfunc (`mlimages.tracking.serving`) built from a Keras checkpoint LoggedModel, logged in the
checkpoint's own training run at its step, so the version records its run, step, params and
metrics. Each new version takes the alias `candidate`; `champion` moves only after an evaluation
beats the current champion on the metric named in params. Stages are never used.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from mlimages.errors import InputError
from mlimages.tracking.model_card import make_model_card
from mlimages.tracking.serving import ServingConfig, log_serving_model
from mlimages.tracking.runs import INIT_MODEL_TAG

CANDIDATE = "candidate"
CHAMPION = "champion"
CHECKPOINT_TAG = "mlimages.checkpoint"
SERVING_TAG = "mlimages.serving_model"
EVAL_PREFIX = "eval."
LINEAGE_PREFIXES = ("git_", "data.")

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    """The `registry:` section of params.yaml.

    Attributes:
        pretrained_name / finetuned_name: registered model names; ``{depth}`` is the ResNet depth.
        pretrained_metric / finetuned_metric: evaluation metric (higher is better) that decides
            whether a newly evaluated version becomes `champion`.
        serving_size: crop side of the served model.
        stored_shorter_side: served photos are first shrunk to this shorter side, like records.
        top_k: classes returned by default.
        tag_threshold: probability from which the multi-label model returns a tag.
        max_image_pixels: larger uploads are refused with HTTP 400 before decoding.
    """

    pretrained_name: str = "mlimages-resnet{depth}-ml"
    finetuned_name: str = "mlimages-resnet{depth}-imagenet"
    pretrained_metric: str = "map_all"
    finetuned_metric: str = "top1_224"
    serving_size: int = 224
    stored_shorter_side: int = 256
    top_k: int = 5
    tag_threshold: float = 0.5
    max_image_pixels: int = 40_000_000

    def model_name(self, task: str, depth: int) -> str:
        """The registered model for a ``"pretrain"`` or ``"finetune"`` checkpoint of `depth`."""
        return (self.pretrained_name if task == "pretrain" else self.finetuned_name).format(depth=depth)

    def champion_metric(self, task: str) -> str:
        return self.pretrained_metric if task == "pretrain" else self.finetuned_metric

    def serving(self, task: str, crop_fraction: float = 0.875) -> ServingConfig:
        return ServingConfig(
            task="multi" if task == "pretrain" else "single", image_size=self.serving_size,
            crop_fraction=crop_fraction, stored_shorter_side=self.stored_shorter_side, top_k=self.top_k,
            threshold=self.tag_threshold, max_image_pixels=self.max_image_pixels,
        )


def find_checkpoints(run_id: str) -> list:
    """The Keras checkpoint LoggedModels of a training run (tag ``mlimages.step``), by step."""
    run = mlflow.get_run(run_id)
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list")
    checkpoints = [m for m in models if "mlimages.step" in m.tags and "mlimages.serving" not in m.tags]
    return sorted(checkpoints, key=lambda m: int(m.tags["mlimages.step"]))


def register_run_checkpoints(run_id: str, config: RegistryConfig) -> list:
    """Register every kept checkpoint of `run_id` not registered yet; returns all their versions."""
    checkpoints = find_checkpoints(run_id)
    if not checkpoints:
        raise InputError("the run logged no checkpoint (LoggedModel with tag mlimages.step)", f"runs:/{run_id}")
    return [register_checkpoint(checkpoint.model_id, config) for checkpoint in checkpoints]


def register_checkpoint(checkpoint_id: str, config: RegistryConfig):
    """Register the Keras checkpoint LoggedModel `checkpoint_id` as a serving version (idempotent).

    Returns:
        The ModelVersion (an existing one when this checkpoint was registered before).
    """
    from mlimages.tracking.pretrained import load_source_model

    client = mlflow.MlflowClient()
    checkpoint = client.get_logged_model(checkpoint_id)
    task = checkpoint.tags.get("mlimages.task", "finetune")
    run = client.get_run(checkpoint.source_run_id)
    name = config.model_name(task, read_depth(run.data.params))
    existing = find_version(name, checkpoint_id)
    if existing is not None:
        return existing
    step = int(checkpoint.tags.get("mlimages.step", 0))
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "model.keras"
        model = load_source_model(f"models:/{checkpoint_id}")
        model.save(model_file)
        classes = fetch_classes_file(run.info.run_id, checkpoint.tags.get("mlimages.classes_file"), tmp,
                                     model.output_shape[-1])
        serving = log_serving_model(model_file, classes, config.serving(task, _crop_fraction(run.data.params)),
                                    run_id=run.info.run_id, step=step, name=f"serving-step-{step}",
                                    tags={"mlimages.serving": "true", CHECKPOINT_TAG: checkpoint_id, "mlimages.task": task})
    tags = {"mlimages.task": task, "mlimages.step": str(step), "mlimages.run_id": run.info.run_id,
            CHECKPOINT_TAG: checkpoint_id, "mlimages.training_data": training_data(run)}
    tags.update({k: v for k, v in run.data.tags.items() if k.startswith(LINEAGE_PREFIXES)})
    return create_version(name, serving.model_id, run.info.run_id, tags)


def create_version(name: str, serving_model_id: str, run_id: str | None, tags: dict[str, str]):
    """Create the version, set its model card and make it the `candidate`."""
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name, description=f"ResNet checkpoints of mlimages ({name}).")
    except MlflowException as error:
        if "already exists" not in str(error).lower() and "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
            raise
    version = client.create_model_version(name, source=f"models:/{serving_model_id}", run_id=run_id,
                                          tags={**tags, SERVING_TAG: serving_model_id}, model_id=serving_model_id)
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    refresh_model_card(name, version.version)
    _log.info("registered %s version %s (step %s)", name, version.version, tags.get("mlimages.step"))
    return client.get_model_version(name, version.version)


def find_version(name: str, checkpoint_id: str):
    """The version of `name` built from `checkpoint_id`, or None."""
    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    return next((v for v in versions if v.tags.get(CHECKPOINT_TAG) == checkpoint_id), None)


def read_depth(params: dict[str, str]) -> int:
    """ResNet depth from a training run's params (``depth`` or ``<section>.depth``); 101 if absent."""
    for key, value in params.items():
        if key == "depth" or key.endswith(".depth"):
            return int(value)
    return 101


def _crop_fraction(params: dict[str, str]) -> float:
    for key, value in params.items():
        if key == "crop_fraction" or key.endswith(".crop_fraction"):
            return float(value)
    return 0.875


def training_data(run) -> str:
    """``name@digest`` of the run's training inputs, plus the finetune source ("from scratch")."""
    inputs = getattr(run.inputs, "dataset_inputs", None) or []
    names = [f"{d.dataset.name}@{d.dataset.digest}" for d in inputs
             if any(t.key == "mlflow.data.context" and t.value in ("train", "training") for t in d.tags)]
    text = ", ".join(names) or "unknown"
    if run.data.params.get("task") == "finetune" and "init_model" in run.data.params:  # where the backbone came from
        text += f" from {run.data.tags.get(INIT_MODEL_TAG) or run.data.params['init_model'] or 'scratch'}"
    return text


def fetch_classes_file(run_id: str, artifact_path: str | None, folder: str, num_classes: int) -> Path:
    """The run's classes.tsv; without one, a file of index names (so serving still answers)."""
    if artifact_path:
        try:
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=folder))
        except (MlflowException, OSError) as error:
            _log.warning("classes file %s of run %s not found (%s)", artifact_path, run_id, error)
    _log.warning("run %s has no classes file: class names will be indices", run_id)
    return write_index_classes(Path(folder) / "classes.tsv", num_classes)


def write_index_classes(path: Path, num_classes: int) -> Path:
    """A classes.tsv whose names are the indices (for models that come without names)."""
    path.write_text("".join(f"{i}\tclass_{i}\t{i}\n" for i in range(num_classes)), encoding="utf-8")
    return path


def register_keras_model(model_path: str | Path, name: str, classes_file: str | Path | None = None,
                         task: str | None = None, config: RegistryConfig | None = None):
    """Register a Keras classifier file (e.g. an imported TF1 checkpoint) as a new serving version.

    Args:
        model_path: a ``.keras`` file of a classifier (logits).
        name: registered model name.
        classes_file: classes.tsv for names; without it names are the class indices.
        task: ``"pretrain"`` (multi-label) or ``"finetune"``; default from the name (``-ml`` suffix).
        config: registry settings (defaults when omitted).

    Returns:
        The new ModelVersion (alias `candidate`).
    """
    from mlimages.tracking.pretrained import load_source_model
    from mlimages.tracking.runs import configure_tracking, lineage_tags

    if not mlflow.tracking.is_tracking_uri_set():
        configure_tracking()  # the project's store (sqlite:///mlflow.db), not MLflow's ./mlruns default
    config = config or RegistryConfig()
    task = task or ("pretrain" if name.endswith("-ml") else "finetune")
    model = load_source_model(str(model_path))
    with tempfile.TemporaryDirectory() as tmp:
        if classes_file is None:
            classes_file = write_index_classes(Path(tmp) / "classes.tsv", model.output_shape[-1])
        with mlflow.start_run(run_name=f"register {Path(model_path).name}") as run:
            mlflow.set_tags({**lineage_tags(), "mlimages.task": task})
            mlflow.log_params({"source": str(model_path), "task": task})
            serving = log_serving_model(model_path, classes_file, config.serving(task), run_id=run.info.run_id,
                                        name="serving", tags={"mlimages.serving": "true", "mlimages.task": task})
    tags = {"mlimages.task": task, "mlimages.step": "0", "mlimages.run_id": run.info.run_id,
            CHECKPOINT_TAG: f"file:{Path(model_path).name}", "mlimages.training_data": "imported", **lineage_tags()}
    return create_version(name, serving.model_id, run.info.run_id, tags)


def record_evaluation(name: str, version: str, metrics: dict[str, float], protocol: str,
                      metric: str) -> bool:
    """Put evaluation results on a version (tags and model card) and move `champion` if it wins.

    Returns:
        True when the version is (now) the champion.
    """
    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        client.set_model_version_tag(name, version, f"{EVAL_PREFIX}{key}", f"{value:.6g}")
    client.set_model_version_tag(name, version, f"{EVAL_PREFIX}protocol", protocol)
    if metric not in metrics:
        raise InputError(f"metric {metric!r} was not computed; computed: {', '.join(sorted(metrics))}",
                         "params.yaml: registry.*_metric")
    won = update_champion(name, version, metric)
    refresh_model_card(name, version)
    return won


def update_champion(name: str, version: str, metric: str) -> bool:
    """Move `champion` to `version` if there is none or it beats the champion on `metric` (strictly)."""
    client = mlflow.MlflowClient()
    value = float(client.get_model_version(name, version).tags[f"{EVAL_PREFIX}{metric}"])
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is not None and str(current.version) != str(version):
        best = current.tags.get(f"{EVAL_PREFIX}{metric}")
        if best is not None and value <= float(best):
            return False
    client.set_registered_model_alias(name, CHAMPION, str(version))
    _log.info("%s: champion is now version %s (%s = %.4f)", name, version, metric, value)
    return True


def refresh_model_card(name: str, version: str) -> None:
    """Rewrite the version's description from its tags (metrics appear once evaluated)."""
    client = mlflow.MlflowClient()
    model_version = client.get_model_version(name, version)
    params = client.get_run(model_version.run_id).data.params if model_version.run_id else {}
    client.update_model_version(name, version, description=make_model_card(model_version, params))


def resolve_versions(uri: str, config: RegistryConfig) -> list:
    """The registered versions meant by `uri`, registering checkpoints on the way.

    Accepted: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/m-ID`` (a checkpoint or a
    serving LoggedModel), ``runs:/RUN_ID`` (every checkpoint of a training run) or a bare run id.
    """
    client = mlflow.MlflowClient()
    try:
        if uri.startswith("models:/m-"):
            model = client.get_logged_model(uri[len("models:/"):].split("/")[0])
            if model.tags.get("mlimages.serving") != "true":
                return [register_checkpoint(model.model_id, config)]
            found = [v for v in client.search_model_versions() if v.tags.get(SERVING_TAG) == model.model_id]
            if not found:
                raise InputError("this serving model is not registered", uri)
            return found
        if uri.startswith("models:/"):
            name, _, rest = uri[len("models:/"):].partition("/")
            if "@" in name:
                name, alias = name.split("@", 1)
                return [client.get_model_version_by_alias(name, alias)]
            return [client.get_model_version(name, rest)]
        run_id = uri[len("runs:/"):].split("/")[0] if uri.startswith("runs:/") else uri
        return register_run_checkpoints(run_id, config)
    except MlflowException as error:
        raise InputError(f"no such model, version or run ({str(error).splitlines()[0]})", uri) from None

