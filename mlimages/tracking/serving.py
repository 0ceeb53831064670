"""The served model: an `mlflow.pyfunc` PythonModel with the image preprocessing inside.

A client sends encoded photos, not tensors: the input is one column `image` of JPEG/PNG bytes
(base64 strings over REST), with optional params `top_k` and `threshold`. Each photo is checked
from its header first (a 50-megapixel upload is refused before a pixel is decoded), shrunk like
the record builder shrinks training photos, then resized and centre-cropped with the evaluation
protocol (`mlimages.data.preprocess.resize_and_center_crop`), so served answers match the
evaluated numbers. Bad input raises `MlflowException(INVALID_PARAMETER_VALUE)`, which the MLflow
scoring server answers with HTTP 400 and the message.

Output, one row per image: ``classes`` (indices), ``names`` (from classes.tsv) and
``probabilities``, best first: every class whose probability (softmax for the single-label model,
sigmoid per tag for the multi-label one) is at or above `threshold` when one is given, else the
`top_k` best. Without either, the single-label model answers its default top-k and the
multi-label model every tag at or above its default threshold. Unknown params and values out of
range are a 400. Over HTTP, `mlimages.tracking.serving_http` adds the body-size limit (413).

This module is the served code itself: a registered version carries a copy of it and of the two
modules it imports (`mlimages.tracking.serving_code`), so it imports nothing else from the project
and loads where `mlimages` is not installed.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import re
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

# Relative imports only: these modules travel with every registered version (see `serving_code`), where
# this package is not `mlimages` and the rest of the project is absent.
from ..images import ImageError, ImageLimits, load_rgb

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

    task: str
    image_size: int
    crop_fraction: float
    stored_shorter_side: int
    top_k: int
    threshold: float
    max_image_pixels: int


def bad_input(message: str) -> MlflowException:
    """The exception the scoring server turns into HTTP 400 with `message`."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


ACCEPTED_FORMAT = ('one column "image" of base64 JPEG/PNG strings, e.g. {"dataframe_split": {"columns": ["image"], '
                   '"data": [["<base64>"]]}} (dataframe_records, inputs and instances with an "image" field work too)')
BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


def read_image_column(model_input: Any) -> list[bytes]:
    """The encoded images of a request, whatever container pyfunc handed us.

    ``dataframe_split`` / ``dataframe_records`` arrive as a DataFrame of decoded bytes; ``inputs`` and
    ``instances`` as a dict of arrays holding the base64 text itself, which `_as_bytes` decodes.
    """
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame) or IMAGE_COLUMN not in model_input.columns:
        columns = [str(c)[:40] for c in list(getattr(model_input, "columns", []))[:5]]
        raise bad_input(f"expected {ACCEPTED_FORMAT}; got columns {columns}")
    return [_as_bytes(value, row) for row, value in enumerate(model_input[IMAGE_COLUMN])]


def _as_bytes(value: Any, row: int) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        # Base64 text passed through as bytes (``inputs``/``instances``): never a JPEG/PNG, whose first
        # byte (0xFF, 0x89) is outside the base64 alphabet.
        if len(data) % 4 == 0 and BASE64_TEXT.fullmatch(data):
            return base64.b64decode(data)
        if data.startswith(b"{'b64'") or data.startswith(b'{"b64"'):
            raise bad_input(f"image {row}: a {{\"b64\": ...}} object; send {ACCEPTED_FORMAT}")
        return data
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            raise bad_input(f"image {row}: not valid base64") from None
    raise bad_input(f"image {row}: expected base64 text, got {type(value).__name__}; send {ACCEPTED_FORMAT}")


def read_params(params: dict[str, Any] | None, config: ServingConfig,
                num_classes: int) -> tuple[int | None, float | None]:
    """(top_k, threshold) of a request; exactly one is not None.

    A `threshold` returns every class at or above it, and `top_k` applies only without one. With
    neither, the single-label model returns its default top-k and the multi-label model every tag
    at or above its default threshold.

    Raises:
        MlflowException: (400) an unknown param, or a value out of range.
    """
    params = {k: v for k, v in (params or {}).items() if v is not None}
    if unknown := sorted(set(params) - {"top_k", "threshold"}):
        raise bad_input(f"unknown params {unknown}; this model takes ['top_k', 'threshold']")
    top_k = params.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise bad_input(f"top_k must be an integer >= 1 (more than the model's {num_classes} classes returns all), "
                        f"got {str(top_k)[:40]}")
    threshold = params.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise bad_input(f"threshold must be a number from 0 to 1, got {str(threshold)[:40]}")
        return None, float(threshold)
    if top_k is None and config.task == "multi":
        return None, config.threshold
    return int(top_k if top_k is not None else config.top_k), None


def preprocess_image(data: bytes, config: ServingConfig, row: int = 0) -> np.ndarray:
    """Encoded bytes -> (size, size, 3) float32 in [-1, 1], with the evaluation protocol.

    Raises:
        MlflowException: (400) for empty, unreadable, truncated or too large images.
    """
    from ..data.preprocess import resize_and_center_crop, scale_pixels

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


def rank_predictions(probabilities: np.ndarray, names: list[str], top_k: int | None,
                     threshold: float | None) -> pd.DataFrame:
    """One row per image, best first: every class >= `threshold` if given, else the `top_k` best."""
    order = np.argsort(-probabilities, axis=1, kind="stable")  # (n, classes)
    rows = []
    for probs, best in zip(probabilities, order):
        best = best[probs[best] >= threshold] if threshold is not None else best[:top_k]
        rows.append({
            "classes": [int(c) for c in best],
            "names": [names[c] if c < len(names) else str(c) for c in best],
            "probabilities": [float(probs[c]) for c in best],
        })
    return pd.DataFrame(rows, columns=["classes", "names", "probabilities"])


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """Encoded images in, named classes out; see the module docstring for the contract."""

    # Names the contract without naming a module: the class a model carries is a copy of this one.
    contract = "mlimages-image-classifier"

    def load_context(self, context) -> None:
        import keras

        self.config = ServingConfig(**json.loads(Path(context.artifacts[CONFIG_ARTIFACT]).read_text()))
        self.model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], compile=False)
        self.names = json.loads(Path(context.artifacts[CLASSES_ARTIFACT]).read_text(encoding="utf-8"))
        # The scoring server calls predict from many threads. One forward pass already uses every
        # core, so running them one at a time costs no throughput and bounds the memory in use
        # (16 concurrent ResNet-101 batches would otherwise hold 16 sets of activations).
        self.forward_lock = threading.Lock()
        warn_without_http_limits()

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        num_classes = int(self.model.outputs[0].shape[-1])
        top_k, threshold = read_params(params, self.config, num_classes)
        images = read_image_column(model_input)
        if not images:
            return rank_predictions(np.zeros((0, num_classes)), self.names, top_k, threshold)
        batch = np.stack([preprocess_image(data, self.config, row) for row, data in enumerate(images)])
        with self.forward_lock:
            logits = np.asarray(self.model(batch, training=False), dtype=np.float64)  # (n, classes)
        return rank_predictions(to_probabilities(logits, self.config.task), self.names, top_k, threshold)


def warn_without_http_limits() -> None:
    """Say so when the scoring server runs without `serving_http`'s body limit (the README's command sets it)."""
    import logging
    import os

    from mlflow.pyfunc.scoring_server import _SERVER_MODEL_PATH  # set for the server `mlflow models serve` starts

    if os.environ.get(_SERVER_MODEL_PATH) and "serving_http" not in os.environ.get("UVICORN_HTTP", ""):
        logging.getLogger(__name__).warning(
            "no request size limit: start the server with UVICORN_HTTP=mlimages.tracking.serving_http:"
            "LimitedHTTPProtocol (see the README's Serving section)")


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
