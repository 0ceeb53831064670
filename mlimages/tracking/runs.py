"""MLflow runs: the tracking store, resumable runs, params and dataset inputs, and one line for a failed call.

Every training run is found again by a deterministic key (a hash of its params and output
folder), so a restarted command resumes the same MLflow run instead of opening a new one.
Checkpoints are `mlimages.tracking.checkpoints`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

import mlflow
from mlflow.exceptions import MlflowException

from mlimages.records.index import INDEX_FILE
from mlimages.tracking.names import CLASSES_ARTIFACT_DIR, CONTINUED_IN_TAG, RUN_KEY_TAG
from mlimages.tracking.outbox_mlflow import is_outage
from mlimages.tracking.rest_registry import public_url, socket_reason

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

_log = logging.getLogger(__name__)


def configure_tracking(default_uri: str = DEFAULT_TRACKING_URI) -> str:
    """Point MLflow at the tracking store: `MLFLOW_TRACKING_URI` if set, else a local SQLite file.

    The file store is deprecated in MLflow 3, so the default is ``sqlite:///mlflow.db`` in the
    working directory. Returns the URI in use.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_uri
    mlflow.set_tracking_uri(uri)
    return uri


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # without it the UI asks, or opens on an empty traces page


def use_experiment(name: str) -> str:
    """Make `name` the active experiment (created when missing), marked as model training; returns its id."""
    experiment = mlflow.set_experiment(name)
    mark_model_training(experiment.experiment_id)
    return experiment.experiment_id


def ensure_experiment(name: str) -> str:
    """Create `name` when missing and mark it as model training, leaving the active experiment alone; returns its id."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    mark_model_training(experiment_id)
    return experiment_id


def mark_model_training(experiment_id: str) -> None:
    """Tag the experiment as model training, so the UI opens on its runs rather than on GenAI traces."""
    client = mlflow.MlflowClient()
    if client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG) != "custom_model_development":
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")


def runs_table_url(ui_address: str, experiment_id: str) -> str:
    """The UI address that opens an experiment's runs table directly."""
    return f"{ui_address.rstrip('/')}/#/experiments/{experiment_id}/runs"


def make_run_key(params: Mapping[str, Any], output_dir: str | Path) -> str:
    """A deterministic key for "the same command": hash of the params and the output folder."""
    payload = json.dumps({"params": params, "output_dir": str(Path(output_dir).resolve())}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def start_or_resume_run(experiment: str, run_key: str, run_name: str | None = None,
                        tags: Mapping[str, str] | None = None) -> mlflow.ActiveRun:
    """Start a run tagged with `run_key`, or reopen the existing run that carries it.

    Under `mlflow run` (``MLFLOW_RUN_ID`` set) a first attempt uses the project's run; a restart
    continues in the run that holds the key, and the new project run is tagged with where it went.

    Args:
        experiment: experiment name (created when missing) for runs started outside `mlflow run`;
            the ``MLFLOW_EXPERIMENT_NAME`` environment variable takes precedence, as in MLflow.
        run_key: from `make_run_key`; the newest run with this tag, in any experiment, is resumed.
        run_name: shown in the UI for a new run.
        tags: set on the run (again on resume, so lineage reflects the latest code).

    Returns the active run (use as a context manager).
    """
    project_run = os.environ.get("MLFLOW_RUN_ID")
    found = mlflow.search_runs(
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", order_by=["attributes.start_time DESC"],
        max_results=1, output_format="list", search_all_experiments=True,
    )
    client = mlflow.MlflowClient()
    if found:
        _log.info("resuming MLflow run %s", found[0].info.run_id)
        run = mlflow.start_run(run_id=found[0].info.run_id)
        if project_run and project_run != found[0].info.run_id:
            _point_to(project_run, found[0].info, tags or {})
    elif project_run:
        run = mlflow.start_run(run_id=project_run, tags={RUN_KEY_TAG: run_key})
    else:
        use_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment)
        run = mlflow.start_run(run_name=run_name, tags={RUN_KEY_TAG: run_key})
    if run_name and not found:
        client.update_run(run.info.run_id, name=run_name)
    mark_model_training(run.info.experiment_id)  # also the experiment an `mlflow run` picked
    if tags:
        mlflow.set_tags(dict(tags))
    return run


def _point_to(project_run: str, resumed, tags: Mapping[str, str]) -> None:
    """The run `mlflow run` opened stays empty: say where the work went, by name and by tag."""
    client = mlflow.MlflowClient()
    client.set_tag(project_run, CONTINUED_IN_TAG, resumed.run_id)
    for key, value in tags.items():
        client.set_tag(project_run, key, value)
    client.update_run(project_run, name=f"{resumed.run_name}-rerun")


def describe_server_failure(error: BaseException) -> tuple[str, bool] | None:
    """One line for a request the tracking server did not answer or refused, and whether it was not answered
    (worth running the same command again later); None for any other error. MLflow's own message is the whole
    URL, possibly with credentials, and its retry machinery's text."""
    if not isinstance(error, MlflowException):
        return None
    server = public_url(mlflow.get_tracking_uri())
    status = error.get_http_status_code()
    if is_outage(error):
        reason = socket_reason(str(error)) or f"status {status}"
        return (f"the tracking server {server} does not answer ({reason}): start it, or point MLFLOW_TRACKING_URI "
                "at it, and run the same command again"), True
    if status == 401:
        return (f"the tracking server {server} refused the credentials: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"), False
    if status == 403:
        endpoint = re.search(r"endpoint (\S+)", str(error))
        who = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
        return (f"the tracking server {server} forbids user {who!r} the call {endpoint[1] if endpoint else 'it made'}"
                ": ask its admin for a grant on the experiment"), False
    return None


def resolve_continued_run(run_id: str) -> str:
    """The run that did the work of `run_id`: the resumed run an `mlflow run` rerun handed over to, else itself."""
    return mlflow.MlflowClient().get_run(run_id).data.tags.get(CONTINUED_IN_TAG) or run_id


def mark_failed(run_id: str) -> None:
    """End `run_id` as FAILED from outside its `with` block (a process about to end without unwinding)."""
    mlflow.MlflowClient().set_terminated(run_id, status="FAILED")


def log_flat_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log nested params as flat ``section.key`` params (lists as JSON)."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            for inner, inner_value in value.items():
                flat[f"{prefix}{key}.{inner}"] = inner_value
        else:
            flat[f"{prefix}{key}"] = value
    mlflow.log_params({k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in flat.items()})


def last_logged_step(run_id: str) -> int:
    """The highest step of any metric already logged in `run_id` (-1 when none).

    A resumed run repeats the steps between its last checkpoint and the kill; metrics for steps
    up to this value were already logged and are skipped, so no metric step appears twice.
    """
    client = mlflow.MlflowClient()
    keys = client.get_run(run_id).data.metrics.keys()
    steps = [m.step for key in keys for m in client.get_metric_history(run_id, key)]
    return max(steps, default=-1)


def log_classes_file(path: str | Path) -> str:
    """Log `classes.tsv` into the run; returns its artifact path (for the checkpoint tag)."""
    mlflow.log_artifact(str(path), CLASSES_ARTIFACT_DIR)
    return f"{CLASSES_ARTIFACT_DIR}/{Path(path).name}"


def log_dataset_input(folder: str | Path, context: str) -> None:
    """Record a TFRecord folder as a run input (name, digest from its index.json, location)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    folder = Path(folder).resolve()
    index = folder / INDEX_FILE
    digest = hashlib.sha256(index.read_bytes()).hexdigest()[:16] if index.is_file() else None
    dataset = MetaDataset(resolve_dataset_source(str(folder)), name=f"{folder.parent.name}/{folder.name}", digest=digest)
    mlflow.log_input(dataset, context=context)
