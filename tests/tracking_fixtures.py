"""Tiny records, tiny checkpoints and a throwaway tracking store, for the tracking, evaluation and CLI tests.

The fixtures are made visible to every test folder by the top-level conftest."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mlflow
import pytest
from PIL import Image

from tests.factories import make_colour_jpeg, write_classes_file, write_record_folder
from tests.mlflow_state import use_store

CLASS_NAMES = ["red square", "green square", "blue square"]
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 40, 220)]


@pytest.fixture(scope="session")
def single_records(tmp_path_factory) -> Path:
    """12 single-label images of 3 colour classes in 3 shards, with classes.tsv beside them."""
    root = tmp_path_factory.mktemp("imagenet")
    examples = [(make_colour_jpeg(COLOURS[i % 3], seed=i), [i % 3], [1.0]) for i in range(12)]
    write_record_folder(root / "val", "single", 3, examples)
    write_classes_file(root / "classes.tsv", CLASS_NAMES)
    return root / "val"


@pytest.fixture(scope="session")
def multi_records(tmp_path_factory) -> Path:
    """10 multi-label images over 4 classes (class 3 has no positive; soft confidences)."""
    root = tmp_path_factory.mktemp("ml-images")
    examples = [(make_colour_jpeg(COLOURS[i % 3], seed=i), sorted({i % 3, (i + 1) % 3}), [1.0, 0.6]) for i in range(10)]
    write_record_folder(root / "val", "multi", 4, examples)
    write_classes_file(root / "classes.tsv", [f"tag {i}" for i in range(4)])
    return root / "val"


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory):
    """A fresh SQLite tracking store (and artifact root) for the whole session of these tests."""
    with use_store(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def registry_config():
    """The `registry:` section of params-paper.yaml: models served at 224 px, as for ImageNet."""
    from mlimages.config import load_params
    from mlimages.tracking.registry import RegistryConfig

    return load_params("registry", RegistryConfig, Path(__file__).resolve().parents[1] / "params-paper.yaml")


def build_tiny_classifier(num_classes: int, seed: int):
    import keras

    from mlimages.models.resnet import build_backbone, build_classifier

    keras.utils.set_random_seed(seed)
    backbone = build_backbone(50, blocks_per_stage=(1, 1, 1, 1), width_multiplier=0.125)
    return build_classifier(backbone, num_classes)


def log_training_run(task: str, classes_file: Path, steps=(10, 20), experiment="mlimages-tests") -> str:
    """A finished training run with one Keras checkpoint LoggedModel per step (as train.py logs them)."""
    from mlimages.records.index import hash_file
    from mlimages.tracking.checkpoints import ModelSpec, log_checkpoint
    from mlimages.tracking.runs import log_classes_file, log_dataset_input

    mlflow.set_experiment(experiment)
    spec = ModelSpec(depth=50, width_multiplier=0.125, image_size=32, crop_fraction=0.875,
                     classes_sha256=hash_file(classes_file))
    with mlflow.start_run(run_name=f"{task}-tiny") as run:
        mlflow.log_params({"depth": 50, "image_size": 32})
        mlflow.set_tags({"git_commit": "abc123", "git_dirty": "false", "mlimages.data_version": "0123456789ab",
                         "data.build_imagenet.data/tfrecords/imagenet": "d41d8cd9"})
        log_dataset_input(classes_file.parent / "val", context="train")
        classes = log_classes_file(classes_file)
        for step in steps:
            model = build_tiny_classifier(len(classes_file.read_text().splitlines()), seed=step)
            log_checkpoint(model, step, task, spec, {"loss": 1.0 / step}, classes_file=classes)
    return run.info.run_id


@pytest.fixture(scope="session")
def finetune_run(tracking_store, single_records) -> str:
    return log_training_run("finetune", single_records.parent / "classes.tsv")


@pytest.fixture(scope="session")
def fixture_photo(shared_data) -> bytes:
    return (shared_data / "images" / "im_0.jpg").read_bytes()


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def make_50_megapixel_jpeg() -> bytes:
    """A real 7072 x 7072 (50 MP) grey JPEG; small on the wire because it is uniform."""
    buffer = io.BytesIO()
    Image.new("L", (7072, 7072), 128).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def served_model(tracking_store, single_records, tmp_path_factory) -> str:
    """A registered single-label tiny model with aliases candidate and champion; returns its name."""
    from mlimages.tracking import registry
    from mlimages.tracking.champion import record_evaluation

    name = "tiny-served-imagenet"
    path = tmp_path_factory.mktemp("served") / "model.keras"
    build_tiny_classifier(3, seed=11).save(path)
    version = registry.register_keras_model(path, name, classes_file=single_records.parent / "classes.tsv",
                                            config=registry_config())
    record_evaluation(name, version.version, {"top1_224": 0.5}, "test", "top1_224")
    return name
