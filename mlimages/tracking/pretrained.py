"""Load the backbone of a pretrained model from wherever it lives.

Finetuning starts from a registry URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``), a
LoggedModel (``models:/m-...``), a run's model (``runs:/RUN_ID/PATH``), a local ``.keras`` file or
a training output folder holding ``model.keras``. Only the backbone is taken; the finetune task
gets a new head. The weights are copied into a backbone built from the finetune params, so a
source with a different architecture fails clearly instead of training something else.

An alias moves (``@champion`` names another version after the next evaluation), so a finetune
pins it to the version it names at the start (`pin_source`), loads that version and records it:
the lineage of the finetuned model keeps naming the weights it really started from.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import keras

from mlimages.errors import InputError
from mlimages.models.resnet import get_backbone

MODEL_FILE = "model.keras"
URI_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "file:/")

_log = logging.getLogger(__name__)


def pin_source(source: str) -> str:
    """``models:/NAME@ALIAS`` -> ``models:/NAME/VERSION`` (the version the alias names now); others unchanged.

    Raises:
        InputError: the registered model or the alias does not exist.
    """
    if not source.startswith("models:/") or "@" not in source:
        return source
    import mlflow
    from mlflow.exceptions import MlflowException

    name, _, alias = source.removeprefix("models:/").partition("@")
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    except MlflowException as error:
        raise InputError(f"pretrained model not found ({str(error).splitlines()[0]})", source) from None
    return f"models:/{name}/{version}"


def load_source_model(source: str) -> keras.Model:
    """Load the Keras classifier at `source` (a URI or a local path), uncompiled.

    Raises:
        InputError: the source does not exist or holds no Keras model.
    """
    if source.startswith(URI_SCHEMES):
        return _load_from_mlflow(source)
    path = Path(source)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise InputError("pretrained model not found (a models:/ or runs:/ URI, a .keras file or a folder)", source)
    return _load_keras_file(path, source)


def _load_from_mlflow(uri: str) -> keras.Model:
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except (MlflowException, OSError) as error:
            raise InputError(f"pretrained model not found ({str(error).splitlines()[0]})", uri) from None
        files = sorted(local.rglob("*.keras")) if local.is_dir() else [local]
        if not files:
            raise InputError("the MLflow model holds no .keras file", uri)
        return _load_keras_file(files[0], uri)


def _load_keras_file(path: Path, where: str) -> keras.Model:
    import mlimages.schedules  # noqa: F401  (registers the schedule classes saved with models)

    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError) as error:
        raise InputError(f"not a loadable Keras model ({error})", where) from None


def restore_backbone(backbone: keras.Model, source: str) -> None:
    """Copy the backbone weights of the model at `source` into `backbone` (built by the caller).

    Args:
        backbone: a freshly built backbone (inside the distribution strategy's scope).
        source: see `load_source_model`.
    """
    loaded = get_backbone(load_source_model(source))
    weights = loaded.get_weights()
    expected = [tuple(w.shape) for w in backbone.weights]
    if [tuple(w.shape) for w in weights] != expected:
        raise InputError(
            f"the pretrained backbone {loaded.name!r} does not match the configured network "
            f"(depth / blocks_per_stage / width_multiplier)", source,
        )
    backbone.set_weights(weights)
    _log.info("restored backbone %s from %s (%d weights)", loaded.name, source, len(weights))
