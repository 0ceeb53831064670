"""Tiny records, tiny checkpoints and a throwaway tracking store for the evaluation tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from mlimages.records.schema import encode_example
from mlimages.records.writer import ShardWriter

CLASS_NAMES = ["red square", "green square", "blue square"]
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 40, 220)]


def make_jpeg(colour, size=(40, 32), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_records(folder: Path, kind: str, examples: list[tuple[bytes, list[int], list[float]]], num_classes: int):
    with ShardWriter(folder, kind, num_classes, shard_bytes=1 << 30, max_records=5) as writer:
        for image, labels, confidences in examples:
            writer.write(encode_example(image, 32, 40, labels, confidences))
        writer.commit()


@pytest.fixture(scope="session")
def single_records(tmp_path_factory) -> Path:
    """12 single-label images of 3 colour classes in 3 shards, with classes.tsv beside them."""
    root = tmp_path_factory.mktemp("imagenet")
    examples = [(make_jpeg(COLOURS[i % 3], seed=i), [i % 3], [1.0]) for i in range(12)]
    write_records(root / "val", "single", examples, 3)
    (root / "classes.tsv").write_text("".join(f"{i}\tn0000000{i}\t{n}\n" for i, n in enumerate(CLASS_NAMES)))
    return root / "val"


@pytest.fixture(scope="session")
def multi_records(tmp_path_factory) -> Path:
    """10 multi-label images over 4 classes (class 3 has no positive; soft confidences)."""
    root = tmp_path_factory.mktemp("ml-images")
    examples = [(make_jpeg(COLOURS[i % 3], seed=i), sorted({i % 3, (i + 1) % 3}), [1.0, 0.6]) for i in range(10)]
    write_records(root / "val", "multi", examples, 4)
    (root / "classes.tsv").write_text("".join(f"{i}\tn1{i}\ttag {i}\n" for i in range(4)))
    return root / "val"


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory):
    """A fresh SQLite tracking store (and artifact root) for the whole session of these tests."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.chdir(folder)  # the default artifact root ./mlruns lands here
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("Default")  # forget an experiment made active in another test's store
    yield uri
    mp.undo()


def build_tiny_classifier(num_classes: int, seed: int):
    import keras

    from mlimages.models.resnet import build_backbone, build_classifier

    keras.utils.set_random_seed(seed)
    backbone = build_backbone(50, blocks_per_stage=(1, 1, 1, 1), width_multiplier=0.125)
    return build_classifier(backbone, num_classes)


def log_training_run(task: str, classes_file: Path, steps=(10, 20), experiment="mlimages-tests") -> str:
    """A finished training run with one Keras checkpoint LoggedModel per step (as train.py logs them)."""
    from mlimages.tracking import runs as tracking

    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{task}-tiny") as run:
        mlflow.log_params({"depth": 50, "image_size": 32})
        mlflow.set_tags({"git_commit": "abc123", "data.build_imagenet.data/tfrecords/imagenet": "d41d8cd9"})
        tracking.log_dataset_input(classes_file.parent / "val", context="train")
        classes = tracking.log_classes_file(classes_file)
        for step in steps:
            model = build_tiny_classifier(len(classes_file.read_text().splitlines()), seed=step)
            tracking.log_checkpoint(model, step, task, {"loss": 1.0 / step}, classes_file=classes)
    return run.info.run_id


@pytest.fixture(scope="session")
def finetune_run(tracking_store, single_records) -> str:
    return log_training_run("finetune", single_records.parent / "classes.tsv")


@pytest.fixture(scope="session")
def fixture_photo(shared_data) -> bytes:
    return (shared_data / "images" / "im_0.jpg").read_bytes()


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def load_pipeline(name: str):
    """Import `pipelines/<name>.py` as a module (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "pipelines" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"pipeline_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_50_megapixel_jpeg() -> bytes:
    """A real 7072 x 7072 (50 MP) grey JPEG; small on the wire because it is uniform."""
    buffer = io.BytesIO()
    Image.new("L", (7072, 7072), 128).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def served_model(tracking_store, single_records, tmp_path_factory) -> str:
    """A registered single-label tiny model with aliases candidate and champion; returns its name."""
    from mlimages.tracking import registry

    name = "tiny-served-imagenet"
    path = tmp_path_factory.mktemp("served") / "model.keras"
    build_tiny_classifier(3, seed=11).save(path)
    version = registry.register_keras_model(path, name, classes_file=single_records.parent / "classes.tsv")
    registry.record_evaluation(name, version.version, {"top1_224": 0.5}, "test", "top1_224")
    return name
