"""The clean score end to end: a finetune val image planted in the pretraining list is found by the
dedup stage, and `evaluate --leaked` scores every version with and without it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import mlflow
import pytest

from mlimages.dedup.config import DedupConfig
from mlimages.dedup.stage import run_dedup
from mlimages.evaluate import EvaluateConfig, evaluate_records
from mlimages.config import load_params
from mlimages.records.config import RecordsConfig
from mlimages.records.imagenet import build_imagenet
from mlimages.records.index import list_shards
from mlimages.records.reader import iter_records
from mlimages.tracking.pretrained import load_source_model
from mlimages.tracking.results_table import render_versions

from tests.dedup.world import demo_image, jpeg, write_world
from tests.factories import params_config, write_params
from tests.pipelines import REPO, load_pipeline
from tests.tracking_fixtures import log_training_run, read_json

RECORDS = params_config("records", RecordsConfig, shorter_side=36, shard_bytes=1 << 20, min_shards=1, num_workers=1)
NAME = "clean-score-resnet50-imagenet"


def add_finetune_images(imagenet):
    """A second class and more val images, so top-1 of a random model is neither 0 nor 1."""
    for split, wnid, indices in (("train", "n00000002", (80,)), ("val", "n00000002", (90, 91, 92)),
                                 ("val", "n00000001", (93, 94))):
        folder = imagenet / split / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for index in indices:
            (folder / f"img_{index}.JPEG").write_bytes(jpeg(demo_image("val", index)))
    dictionary = imagenet.parent / "dictionary.txt"
    dictionary.write_text("0\tfirst class\n1\tsecond class\n")
    return dictionary


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Dedup outputs, the finetune val records, and the same records built without the leaked image."""
    root = tmp_path_factory.mktemp("clean-score")
    planted = write_world(root)
    dictionary = add_finetune_images(root / "imagenet")
    run_dedup(root / "images" / "train", root / "images" / "val", root / "imagenet", root / "dedup",
              root / "sheet.png", params_config("dedup", DedupConfig, hash_workers=1))
    build_imagenet(root / "imagenet", dictionary, root / "records", RECORDS)
    shutil.copytree(root / "imagenet", root / "imagenet-without")
    (root / "imagenet-without" / "val" / planted["finetune_id"]).unlink()
    build_imagenet(root / "imagenet-without", dictionary, root / "records-without", RECORDS)
    return root, planted


@pytest.fixture(scope="module")
def finetune_run_2_classes(tracking_store, world):
    root, _ = world
    return log_training_run("finetune", root / "records" / "classes.tsv", experiment="mlimages-clean-score")


def run_evaluate(root, run_id, tmp_path, *extra, metric="top1_32"):
    params = write_params(tmp_path / "params.yaml", evaluate={"sizes": [32], "batch_size": 4},
                          registry={"finetuned_name": "clean-score-resnet{depth}-imagenet",
                                    "finetuned_metric": metric})
    out = tmp_path / "eval.json"
    args = ["--model-uri", f"runs:/{run_id}", "--records", str(root / "records" / "val"), "--out", str(out),
            "--params", str(params), *extra]
    assert load_pipeline("evaluate").main(args) == 0
    return read_json(out)["results"]


def test_leaked_finetune_image_is_left_out_of_the_clean_score(world, finetune_run_2_classes, tmp_path):
    root, planted = world
    filenames = [r.filename for r in iter_records(list_shards(root / "records" / "val"))]
    assert planted["finetune_id"] in filenames and len(filenames) == 7
    leaked = str(root / "dedup" / "leaked.tsv")
    results = run_evaluate(root, finetune_run_2_classes, tmp_path, "--leaked", leaked, metric="top1_32_clean")
    config = load_params("evaluate", EvaluateConfig, tmp_path / "params.yaml")
    client = mlflow.MlflowClient()
    for result in results:
        model = load_source_model(f"models:/{result['name']}/{result['version']}")
        reference, _, reference_count = evaluate_records(model, root / "records-without" / "val", config)
        metrics = result["metrics"]
        assert metrics["leaked_left_out"] == 1 and reference_count == result["images"] - 1 == 6
        assert metrics["top1_32_clean"] == reference["top1_32"] and metrics["top5_32_clean"] == reference["top5_32"]
        version = client.get_model_version(result["name"], str(result["version"]))
        assert version.tags["eval.leaked_left_out"] == "1"
        assert version.tags["eval.top1_32_clean"] == f"{reference['top1_32']:.6g}"
        assert "finetune_val in" in version.tags["eval.protocol"] and "`_clean` leave out the 1" in version.description
    table = render_versions(client, [NAME])
    header, rows = table.splitlines()[0].split(), table.splitlines()[2:]
    assert header[-4:] == ["top1_32_clean", "top5_32_clean", "leaked_left_out", "aliases"] and len(rows) == 2
    assert all(row.split()[-2] == "1" for row in rows)


def test_without_the_list_there_is_no_clean_score_and_no_stale_one(world, finetune_run_2_classes, tmp_path):
    root, _ = world
    results = run_evaluate(root, finetune_run_2_classes, tmp_path, "--leaked", "")
    assert not any(key.endswith("_clean") or key == "leaked_left_out" for r in results for key in r["metrics"])
    for version in mlflow.MlflowClient().search_model_versions(f"name = '{NAME}'"):
        assert "eval.top1_32_clean" not in version.tags and "eval.top1_32" in version.tags
    assert "leaked_left_out" not in render_versions(mlflow.MlflowClient(), [NAME])


def test_default_list_is_optional_but_a_named_one_must_exist(world, finetune_run_2_classes, tmp_path, caplog):
    root, _ = world
    caplog.set_level("WARNING")
    results = run_evaluate(root, finetune_run_2_classes, tmp_path)  # no data/dedup/leaked.tsv in this folder
    assert "no clean score: data/dedup/leaked.tsv not found" in caplog.text
    assert "top1_32_clean" not in results[0]["metrics"]
    with pytest.raises(SystemExit) as exit_info:
        run_evaluate(root, finetune_run_2_classes, tmp_path, "--leaked", str(root / "missing.tsv"))
    assert exit_info.value.code == 2


def test_mlproject_entry_point_passes_the_leaked_list(world, finetune_run_2_classes, tmp_path, monkeypatch):
    """`mlflow run . -e evaluate -P leaked=...` (local env): the parameter reaches the script."""
    root, _ = world
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    params = write_params(tmp_path / "params.yaml", evaluate={"sizes": [32], "batch_size": 4},
                          registry={"finetuned_name": "clean-score-resnet{depth}-imagenet",
                                    "finetuned_metric": "top1_32_clean"})
    out = tmp_path / "eval.json"
    parameters = {"model_uri": f"runs:/{finetune_run_2_classes}", "records": str(root / "records" / "val"),
                  "leaked": str(root / "dedup" / "leaked.tsv"), "out": str(out), "params": str(params)}
    submitted = mlflow.projects.run(str(REPO), "evaluate", parameters=parameters, env_manager="local",
                                    experiment_name="mlimages-clean-score", synchronous=True)
    assert submitted.get_status() == "FINISHED"
    results = read_json(out)["results"]
    assert len(results) == 2 and all(r["metrics"]["leaked_left_out"] == 1 for r in results)
    assert all("top1_32_clean" in r["metrics"] for r in results)
    assert mlflow.get_run(submitted.run_id).data.params["leaked"] == parameters["leaked"]
