"""Find the registered versions a model URI names, without creating any, and what each was built from.

Evaluation takes a URI that names either checkpoints, which it registers first
(`mlimages.tracking.registry.register_checkpoints`), or versions that exist already (here).
`names_checkpoints` tells the two apart.

A version carries no link tags: its source is its serving LoggedModel (``models:/m-ID``), whose
tags name the checkpoint, step and task, and `version.run_id` is the training run. Those links are
MLflow's own (the UI follows them), so the versions page keeps its tags for what a person reads.
"""

from __future__ import annotations

import logging

import mlflow
from mlflow.exceptions import MlflowException

from mlimages.errors import InputError
from mlimages.tracking.names import SERVING_TAG
from mlimages.tracking.version_source import VersionSource, serving_model_id, source_from_tags

_log = logging.getLogger(__name__)


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
