"""Logging the served model with its own code and exact requirements: a deployment host needs only the model.

A pickled `ImageClassifier` would name its class by module, `mlimages.tracking.serving`, and fail to
load wherever the project is not installed. So the model is logged from code (MLflow
models-from-code): `serving_entry.py` is the model's code file, and `code_paths` carries a package
`mlimages_serving` holding unchanged copies of the three modules the classifier runs, laid out as in
this project so their relative imports hold. The copies are taken when the version is logged, so a
version keeps serving the code it was evaluated with. Its requirements pin the installed versions of
what that code imports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from mlimages.records.index import read_class_names
from mlimages.tracking.requirements import pip_requirements
from mlimages.tracking.serving import (
    CLASSES_ARTIFACT, CONFIG_ARTIFACT, IMAGE_COLUMN, KERAS_ARTIFACT, ServingConfig, make_example_image,
)

SERVED_PACKAGE = "mlimages_serving"
SERVED_MODULES = ("tracking/serving.py", "images.py", "data/preprocess.py")  # relative to the mlimages package
ENTRY_FILE = Path(__file__).with_name("serving_entry.py")


def stage_served_package(folder: Path) -> Path:
    """Copy `SERVED_MODULES` into ``folder/mlimages_serving`` (empty ``__init__.py`` files); returns that package."""
    project = Path(__file__).resolve().parents[1]
    package = folder / SERVED_PACKAGE
    for relative in SERVED_MODULES:
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project / relative, target)
    for directory in {package, *((package / relative).parent for relative in SERVED_MODULES)}:
        (directory / "__init__.py").touch()
    return package


@contextlib.contextmanager
def importable(folder: Path):
    """The staged package importable while MLflow runs the entry file at logging time (it checks that the
    file sets a model, and loads the saved model to check the input example), then forgotten: a model loaded
    later in this process imports its own copy, and no path into a deleted temporary folder stays behind."""
    before, paths = set(sys.modules), list(sys.path)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path[:] = [path for path in sys.path if path in paths]
        for name in set(sys.modules) - before:
            if name == SERVED_PACKAGE or name.startswith(SERVED_PACKAGE + "."):
                del sys.modules[name]


def make_serving_signature(config: ServingConfig):
    """Input: column `image` (binary); output: ranked class lists; params: `top_k`, `threshold`."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import Array

    inputs = Schema([ColSpec(DataType.binary, IMAGE_COLUMN)])
    outputs = Schema([
        ColSpec(Array(DataType.long), "classes"),
        ColSpec(Array(DataType.string), "names"),
        ColSpec(Array(DataType.double), "probabilities"),
    ])
    params = ParamSchema([
        # No defaults here: MLflow would pass them on every request, and a threshold always present
        # would leave top_k unused. The model's defaults apply to what a request leaves out.
        ParamSpec("top_k", DataType.long, None),
        ParamSpec("threshold", DataType.double, None),
    ])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def served_requirements() -> list[str]:
    """Exact pins of what the served code imports (TensorFlow's CPU build where that is what is installed)."""
    pins = pip_requirements()
    if any(pin.startswith("tensorflow-cpu==") for pin in pins):
        pins = [pin for pin in pins if not pin.startswith("tensorflow==")]
    return pins


def write_artifacts(folder: Path, keras_model_file: str | Path, classes_file: str | Path,
                    config: ServingConfig) -> dict[str, str]:
    """The pyfunc artifacts: the Keras file, the class names (a JSON list, read by the project's own
    classes.tsv reader, which stays here) and the serving config (not `model_config`, which MLflow
    would also log as params of the run)."""
    config_file = folder / "serving_config.json"
    config_file.write_text(json.dumps(dataclasses.asdict(config), indent=2))
    names_file = folder / "class_names.json"
    names_file.write_text(json.dumps(read_class_names(classes_file), ensure_ascii=False), encoding="utf-8")
    return {KERAS_ARTIFACT: str(keras_model_file), CLASSES_ARTIFACT: str(names_file),
            CONFIG_ARTIFACT: str(config_file)}


def log_serving_model(keras_model_file: str | Path, classes_file: str | Path, config: ServingConfig,
                      run_id: str | None = None, step: int = 0, name: str = "serving",
                      tags: dict[str, str] | None = None):
    """Log the pyfunc (Keras model + class names + preprocessing code) as a LoggedModel.

    Args:
        keras_model_file: a ``.keras`` file of the classifier (logits).
        classes_file: ``classes.tsv`` giving the class names.
        config: preprocessing and output settings.
        run_id: the training run the model belongs to (its params are copied onto the model).
        step: training step of the checkpoint.
        name: the LoggedModel name.
        tags: LoggedModel tags.

    Returns:
        mlflow ModelInfo (``.model_id``, ``.model_uri``).
    """
    from mlflow.models import Model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        artifacts = write_artifacts(folder, keras_model_file, classes_file, config)
        package = stage_served_package(folder / "code")
        with importable(folder / "code"):
            return Model.log(
                artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run_id, step=step, tags=tags,
                python_model=str(ENTRY_FILE), code_paths=[str(package)], artifacts=artifacts,
                signature=make_serving_signature(config), pip_requirements=served_requirements(),
                input_example=(pd.DataFrame({IMAGE_COLUMN: [make_example_image()]}), {"top_k": config.top_k}),
            )
