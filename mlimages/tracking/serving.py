"""The served model: an `mlflow.pyfunc` PythonModel with the image preprocessing inside.

A client sends encoded photos, not tensors: the input is one column `image` of JPEG/PNG bytes
(base64 strings over REST), with optional params `top_k` and `threshold`. Each photo is checked
from its header first (a 50-megapixel upload is refused before a pixel is decoded), shrunk like
the record builder shrinks training photos, then resized and centre-cropped with the evaluation
protocol (`mlimages.data.preprocess.resize_and_center_crop`), so served answers match the
evaluated numbers. Bad input raises `MlflowException(INVALID_PARAMETER_VALUE)`, which the MLflow
scoring server answers with HTTP 400 and the message.

Output, one row per image: ``classes`` (indices), ``names`` (from classes.tsv) and
``probabilities``: the `top_k` best classes (softmax) for the single-label model, the tags with
sigmoid probability >= `threshold` (at most `top_k`) for the multi-label model.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from mlimages.images import ImageError, ImageLimits, load_rgb
from mlimages.records.index import read_class_names
from mlimages.tracking.requirements import pip_requirements

IMAGE_COLUMN = "image"
KERAS_ARTIFACT = "keras_model"
CLASSES_ARTIFACT = "classes"
CONFIG_ARTIFACT = "serving_config"


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How the served model reads images; stored as the pyfunc artifact `serving_config`.

    Attributes:
        task: ``"single"`` (softmax, top-k) or ``"multi"`` (sigmoid, tags above a threshold).
        image_size: side of the centre crop fed to the network.
        crop_fraction: the crop covers this fraction of the shorter side (0.875: 256 -> 224).
        stored_shorter_side: photos are first shrunk to this shorter side, as records are.
        top_k: default number of classes returned.
        threshold: default tag threshold of the multi-label model.
        max_image_pixels: larger images are refused from their header.
    """

    task: str = "single"
    image_size: int = 224
    crop_fraction: float = 0.875
    stored_shorter_side: int = 256
    top_k: int = 5
    threshold: float = 0.5
    max_image_pixels: int = 40_000_000


def bad_input(message: str) -> MlflowException:
    """The exception the scoring server turns into HTTP 400 with `message`."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def read_image_column(model_input: Any) -> list[bytes]:
    """The encoded images of a request, whatever container pyfunc handed us."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame) or IMAGE_COLUMN not in model_input.columns:
        columns = list(getattr(model_input, "columns", []))
        raise bad_input(f"expected one input column '{IMAGE_COLUMN}' of JPEG/PNG bytes (base64 in JSON), got {columns}")
    return [_as_bytes(value, row) for row, value in enumerate(model_input[IMAGE_COLUMN])]


def _as_bytes(value: Any, row: int) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            raise bad_input(f"image {row}: not valid base64") from None
    raise bad_input(f"image {row}: expected bytes, got {type(value).__name__}")


def preprocess_image(data: bytes, config: ServingConfig, row: int = 0) -> np.ndarray:
    """Encoded bytes -> (size, size, 3) float32 in [-1, 1], with the evaluation protocol.

    Raises:
        MlflowException: (400) for empty, unreadable, truncated or too large images.
    """
    from mlimages.data.preprocess import resize_and_center_crop, scale_pixels

    if not data:
        raise bad_input(f"image {row}: empty image (0 bytes)")
    try:
        image = load_rgb(data, ImageLimits(max_pixels=config.max_image_pixels), shorter_side=config.stored_shorter_side)
    except ImageError as error:
        raise bad_input(f"image {row}: {_describe(error)}") from None
    crop = resize_and_center_crop(np.asarray(image), config.image_size, config.crop_fraction)
    return scale_pixels(crop).numpy()  # (size, size, 3)


def _describe(error: ImageError) -> str:
    if error.reason == "not_image":
        return "not a JPEG/PNG image (the bytes cannot be decoded)"
    return f"{error.reason.replace('_', ' ')}: {str(error).split(': ', 1)[-1]}"


def rank_predictions(probabilities: np.ndarray, names: list[str], task: str, top_k: int,
                     threshold: float) -> pd.DataFrame:
    """One row per image: the best `top_k` classes (single) or tags >= `threshold` (multi)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]  # (n, top_k)
    rows = []
    for probs, best in zip(probabilities, order):
        if task == "multi":
            best = best[probs[best] >= threshold]
        rows.append({
            "classes": [int(c) for c in best],
            "names": [names[c] if c < len(names) else str(c) for c in best],
            "probabilities": [float(probs[c]) for c in best],
        })
    return pd.DataFrame(rows, columns=["classes", "names", "probabilities"])


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """Encoded images in, named classes out; see the module docstring for the contract."""

    def load_context(self, context) -> None:
        import keras

        self.config = ServingConfig(**json.loads(Path(context.artifacts[CONFIG_ARTIFACT]).read_text()))
        self.model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], compile=False)
        self.names = read_class_names(context.artifacts[CLASSES_ARTIFACT])
        # The scoring server calls predict from many threads. One forward pass already uses every
        # core, so running them one at a time costs no throughput and bounds the memory in use
        # (16 concurrent ResNet-101 batches would otherwise hold 16 sets of activations).
        self.forward_lock = threading.Lock()

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        top_k = int(params["top_k"]) if params.get("top_k") is not None else self.config.top_k
        threshold = float(params.get("threshold", self.config.threshold))
        if top_k < 1:
            raise bad_input(f"top_k must be >= 1, got {top_k}")
        images = read_image_column(model_input)
        if not images:
            return rank_predictions(np.zeros((0, 1)), self.names, self.config.task, top_k, threshold)
        batch = np.stack([preprocess_image(data, self.config, row) for row, data in enumerate(images)])
        with self.forward_lock:
            logits = np.asarray(self.model(batch, training=False), dtype=np.float64)  # (n, classes)
        return rank_predictions(to_probabilities(logits, self.config.task), self.names, self.config.task,
                                top_k, threshold)


def to_probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax over classes (single-label) or an independent sigmoid per class (multi-label)."""
    if task == "multi":
        return np.exp(-np.logaddexp(0.0, -logits))  # sigmoid without overflow warnings
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def make_example_image() -> bytes:
    """A small deterministic JPEG used as the logged input example."""
    from PIL import Image

    gradient = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gradient).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


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
        ParamSpec("top_k", DataType.long, config.top_k),
        ParamSpec("threshold", DataType.double, config.threshold),
    ])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def log_serving_model(keras_model_file: str | Path, classes_file: str | Path, config: ServingConfig,
                      run_id: str | None = None, step: int = 0, name: str = "serving",
                      tags: dict[str, str] | None = None):
    """Log the pyfunc (Keras model + classes.tsv + preprocessing) as a LoggedModel.

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
    import tempfile

    from mlflow.models import Model

    # The config travels as an artifact: `model_config` would also be logged as params of the run.
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "serving_config.json"
        config_file.write_text(json.dumps(dataclasses.asdict(config), indent=2))
        artifacts = {KERAS_ARTIFACT: str(keras_model_file), CLASSES_ARTIFACT: str(classes_file),
                     CONFIG_ARTIFACT: str(config_file)}
        return Model.log(
            artifact_path=None, name=name, flavor=mlflow.pyfunc, run_id=run_id, step=step, tags=tags,
            python_model=ImageClassifier(), artifacts=artifacts, signature=make_serving_signature(config),
            input_example=(pd.DataFrame({IMAGE_COLUMN: [make_example_image()]}), {"top_k": config.top_k}),
            pip_requirements=pip_requirements(),
        )

