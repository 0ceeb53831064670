"""mlimages.stats and the dataset_stats stage, on tiny record folders written in the contract format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mlimages.errors import InputError
from mlimages.stats import StatsConfig, count_labels, write_dataset_stats

from tests.factories import params_config, write_classes_file, write_record_folder
from tests.pipelines import load_pipeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_split(folder: Path, labels: list[list[int]], num_classes: int, per_shard: int = 2, label_kind="multi"):
    """A records folder whose images are a few fake bytes (only labels are read here)."""
    examples = [(b"\xff\xd8fake%d" % k, classes, [0.9] * len(classes)) for k, classes in enumerate(labels)]
    write_record_folder(folder, label_kind, num_classes, examples, records_per_shard=per_shard, size=(8, 8))


TRAIN = [[0, 1, 2], [0, 1], [0, 3], [0], [0, 1, 2, 3], [0, 2]]  # class 4 never appears
VAL = [[0, 1], [0, 3], [3]]


@pytest.fixture
def records(tmp_path) -> Path:
    root = tmp_path / "tfrecords"
    write_split(root / "ml-images" / "train", TRAIN, num_classes=5)
    write_split(root / "ml-images" / "val", VAL, num_classes=5)
    write_classes_file(root / "ml-images" / "classes.tsv", ["thing", "dog", "cat", "tree", "rock"])
    write_split(root / "imagenet" / "train", [[0], [1], [1], [2]], num_classes=3, label_kind="single")
    write_split(root / "imagenet" / "val", [[0], [2]], num_classes=3, label_kind="single")
    return root


def test_count_labels(records):
    counts = count_labels(records / "ml-images" / "train")
    assert counts.images == 6 and counts.num_classes == 5
    assert counts.images_per_class.tolist() == [6, 3, 3, 2, 0]
    assert dict(counts.tags_per_image) == {1: 1, 2: 3, 3: 1, 4: 1}


def test_summary_plots_and_figures(records, tmp_path):
    out = tmp_path / "stats"
    summary = write_dataset_stats(
        records / "ml-images" / "train", records / "ml-images" / "val", out, params_config("stats", StatsConfig, trainable_min_images=3),
        (records / "imagenet" / "train", records / "imagenet" / "val"),
    )
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["ml_images"] == {
        "train_images": 6, "val_images": 3, "classes": 5, "trainable_classes": 3, "trainable_min_images": 3,
        "avg_tags_per_image": round(14 / 6, 4), "avg_images_per_class": 2.8, "classes_without_train_images": 1,
    }
    assert summary["imagenet"] == {"train_images": 4, "val_images": 2, "classes": 3,
                                   "min_train_images_per_class": 1, "max_train_images_per_class": 2}
    with (out / "images_per_class.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["rank"], r["images"], r["name"]) for r in rows] == [
        ("1", "6", "thing"), ("2", "3", "dog"), ("3", "3", "cat"), ("4", "2", "tree"), ("5", "0", "rock")]
    with (out / "tags_per_image.csv").open() as handle:
        assert [(r["tags"], r["images"]) for r in csv.DictReader(handle)] == [
            ("0", "0"), ("1", "1"), ("2", "3"), ("3", "1"), ("4", "1")]
    for name in ("images_per_class.png", "tags_per_image.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_count_mismatch_and_missing_index_are_input_errors(records, tmp_path):
    folder = records / "ml-images" / "val"
    index = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**index, "count": 4}))
    with pytest.raises(InputError, match="3 records, but index.json says 4"):
        count_labels(folder)
    with pytest.raises(InputError, match="no index.json"):
        count_labels(tmp_path)


def test_stage_script(records, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("stats:\n  trainable_min_images: 2\n", encoding="utf-8")
    main = load_pipeline("dataset_stats").main
    args = ["--train", str(records / "ml-images/train"), "--val", str(records / "ml-images/val"),
            "--out", str(tmp_path / "reports/stats"), "--params", str(params)]
    assert main(args) == 0
    summary = json.loads((tmp_path / "reports/stats/summary.json").read_text())
    assert summary["ml_images"]["trainable_classes"] == 4 and "imagenet" not in summary
    capsys.readouterr()
    args[1] = str(tmp_path / "nowhere")
    with pytest.raises(SystemExit) as raised:
        main(args)
    assert raised.value.code == 2
    assert capsys.readouterr().err == f"error: {args[1]}: record folder not found\n"
