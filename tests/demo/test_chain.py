"""The demo chain of `mlflow run` entry points, run twice in one working copy on tiny records.

The second run is what a user's second `make demo` does: every training command resumes its
finished run, nothing is registered again and the table is the same. Both runs' MLflow records
are then read back: names, task tags, one metric entry per step, the registry versions' tags.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from mlimages.tracking.names import CHAMPION, CHECKPOINT_TAG, CONTINUED_IN_TAG, TASK_TAG, TRAINING_DATA_TAG
from mlimages.tracking.registry import RegistryConfig
from mlimages.tracking.results_table import render_versions

from tests.mlflow_state import use_store
from tests.train.fakes import tiny_section, write_records

REPO = Path(__file__).resolve().parents[2]
REGISTRY = {
    "pretrained_name": "tiny-resnet{depth}-ml", "finetuned_name": "tiny-resnet{depth}-imagenet",
    "pretrained_metric": "map_all", "finetuned_metric": "top1_32", "serving_size": 32, "stored_shorter_side": 32,
    "top_k": 3, "tag_threshold": 0.5, "max_image_pixels": 1000000,
}
EVALUATE = {"sizes": [32], "crop_fraction": 0.875, "ten_crop": False, "batch_size": 8, "max_images": 0,
            "threshold": 0.5, "precision_at": [1]}


def make_working_copy(root: Path) -> Path:
    """MLproject, its entry points, tiny params and records in the layout `make demo` uses."""
    for name in ("MLproject", "python_env.yaml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "pipelines", root / "pipelines")
    steps = {"steps": 8, "checkpoint_every_epochs": 0, "checkpoint_every_steps": 8, "experiment": "mlimages"}
    params = {"pretrain": tiny_section("pretrain", steps), "finetune": tiny_section("finetune", steps),
              "evaluate": EVALUATE, "registry": REGISTRY, "stats": {"trainable_min_images": 0}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    records = root / "data" / "tfrecords"
    write_records(records / "ml-images" / "train", 64, "multi", seed=1)
    write_records(records / "ml-images" / "val", 16, "multi", num_shards=1, seed=2)
    write_records(records / "imagenet" / "train", 64, "single", seed=3)
    write_records(records / "imagenet" / "val", 16, "single", num_shards=1, seed=4)
    return root


def run_chain(root: Path) -> str:
    from mlimages.demo.chain import run_demo

    config = RegistryConfig(**REGISTRY)
    names = run_demo(str(root / "data" / "tfrecords"), "models", "params.yaml", config)
    return render_versions(mlflow.MlflowClient(), list(names))


@pytest.mark.slow
def test_demo_chain_twice_registers_nothing_new(tmp_path, monkeypatch):
    root = make_working_copy(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with use_store(root):
        client = mlflow.MlflowClient()
        first = run_chain(root)
        versions = {(v.name, v.version) for v in client.search_model_versions()}
        second = run_chain(root)
        assert second == first and "tiny-resnet50-imagenet" in first
        assert {(v.name, v.version) for v in client.search_model_versions()} == versions
        check_runs(client)
        check_versions(client)


def check_runs(client) -> None:
    experiment = client.get_experiment_by_name("mlimages")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names.count("pretrain-resnet50-w0.125") == 1 and names.count("finetune-scratch") == 1
    assert names.count("finetune-from-ml-v1") == 1, names
    assert names.count("evaluate-tiny-resnet50-imagenet-v1") == 2, names  # each chain evaluates it once
    reruns = [r for r in runs if r.info.run_name.endswith("-rerun")]
    assert len(reruns) == 3 and all(CONTINUED_IN_TAG in r.data.tags for r in reruns)
    for run in runs:
        assert run.data.tags.get(TASK_TAG) in ("pretrain", "finetune", "evaluate"), run.info.run_name
        assert run.data.tags["git_dirty"] == "unknown"  # the working copy is no git repository
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), (run.info.run_name, key, steps)
            assert not key.endswith("_trainable"), key  # every class is trainable here: no twin metrics


def check_versions(client) -> None:
    for name, source in (("tiny-resnet50-imagenet", None), ("tiny-resnet50-ml", "ml-images/train@")):
        for version in client.search_model_versions(f"name = '{name}'"):
            tags = version.tags
            serving = client.get_logged_model(version.source.removeprefix("models:/"))
            for model in (serving, client.get_logged_model(serving.tags[CHECKPOINT_TAG])):  # "Registered" in the UI
                listed = json.loads(model.tags["mlflow.modelVersions"])
                assert listed == [{"name": name, "version": int(version.version)}]
            assert len(tags) <= 9, sorted(tags)
            assert next(iter(tags)) == ("eval.map_all" if source else "eval.top1_32"), list(tags)  # metrics first
            assert "git_commit" in tags and "mlimages.data_version" in tags
            assert not any(k.startswith("data.") for k in tags)
            if source:
                assert tags[TRAINING_DATA_TAG].startswith(source) and "eval.map_all" in tags
            else:
                assert tags[TRAINING_DATA_TAG] in ("from scratch", "from tiny-resnet50-ml v1")
                assert "eval.top1_32" in tags and "eval.top5_32" in tags
        model = client.get_registered_model(name)
        champion = client.get_model_version_by_alias(name, CHAMPION)
        assert model.tags[CHAMPION].startswith(f"v{champion.version} ")
        assert f"Champion: version {champion.version}" in model.description
