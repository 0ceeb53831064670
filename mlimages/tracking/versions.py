"""Find the registered versions a model URI names, without creating any, and what each was built from.

Evaluation takes a URI that names either checkpoints, which it registers first
(`mlimages.tracking.registry.register_checkpoints`), or versions that exist already (here).
`names_checkpoints` tells the two apart.

A version carries no link tags: its source is its serving LoggedModel (``models:/m-ID``), whose
tags name the checkpoint, step and task, and `version.run_id` is the training run. Those links are
MLflow's own (the UI follows them), so the versions page keeps its tags for what a person reads.
"""

from __future__ import annotations

import dataclasses
import logging

import mlflow
from mlflow.exceptions import MlflowException

from mlimages.errors import InputError
from mlimages.tasks import FINETUNE
from mlimages.tracking.names import CHECKPOINT_TAG, SERVING_TAG, STEP_TAG, TASK_TAG

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class VersionSource:
    """What a registered version was built from.

    Attributes:
        model_id: the serving LoggedModel (the version's source), or "?" when the source is another URI.
        checkpoint: the checkpoint LoggedModel it was built from, ``file:NAME`` for a registered file, or "?".
        task: ``"pretrain"`` or ``"finetune"``.
        step: the checkpoint's global step, or None when unknown.
    """

    model_id: str
    checkpoint: str
    task: str
    step: int | None


def serving_model_id(version) -> str | None:
    """The serving LoggedModel a version was created from (the SQL registry keeps it only as the source)."""
    model_id = getattr(version, "model_id", None)
    if model_id:
        return model_id
    source = version.source or ""
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def read_version_source(client, version) -> VersionSource:
    """The `VersionSource` of a ModelVersion, from its serving LoggedModel's tags."""
    model_id, tags = serving_model_id(version), {}
    if model_id:
        try:
            tags = client.get_logged_model(model_id).tags
        except MlflowException as error:
            _log.warning("%s version %s: serving model %s not found (%s)", version.name, version.version,
                         model_id, str(error).splitlines()[0])
    return source_from_tags(model_id, tags, version.tags)


def source_from_tags(model_id: str | None, model_tags: dict[str, str], version_tags: dict[str, str]) -> VersionSource:
    """A `VersionSource` from the serving model's tags; versions registered before the links moved
    there carried the same keys themselves, so those are read as a fallback."""

    def pick(key: str) -> str | None:
        return model_tags.get(key) or version_tags.get(key)

    step = pick(STEP_TAG)
    return VersionSource(model_id or "?", pick(CHECKPOINT_TAG) or "?", pick(TASK_TAG) or FINETUNE,
                         int(step) if step else None)


def names_checkpoints(uri: str) -> bool:
    """True when `uri` is a training run (``runs:/ID``, a bare id) or a checkpoint LoggedModel.

    Raises:
        InputError: ``models:/m-ID`` of a LoggedModel that does not exist.
    """
    if not uri.startswith("models:/"):
        return True
    if not uri.startswith("models:/m-"):
        return False
    try:
        model = mlflow.MlflowClient().get_logged_model(uri.removeprefix("models:/").split("/")[0])
    except MlflowException as error:
        raise InputError(f"no such model ({str(error).splitlines()[0]})", uri) from None
    return model.tags.get(SERVING_TAG) != "true"


def resolve_versions(uri: str) -> list:
    """The registered versions `uri` names.

    Accepted: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, or ``models:/m-ID`` of a serving
    LoggedModel (the versions built from it).

    Raises:
        InputError: nothing registered matches.
    """
    client = mlflow.MlflowClient()
    try:
        if uri.startswith("models:/m-"):
            model_id = uri.removeprefix("models:/").split("/")[0]
            found = list(client.search_model_versions(f"source_path = 'models:/{model_id}'"))
            if not found:
                raise InputError("this serving model is not registered", uri)
            return found
        if not uri.startswith("models:/"):
            raise InputError("expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/m-ID", uri)
        name, _, rest = uri.removeprefix("models:/").partition("/")
        if "@" in name:
            name, alias = name.split("@", 1)
            return [client.get_model_version_by_alias(name, alias)]
        return [client.get_model_version(name, rest)]
    except MlflowException as error:
        raise InputError(f"no such model, version or run ({str(error).splitlines()[0]})", uri) from None
