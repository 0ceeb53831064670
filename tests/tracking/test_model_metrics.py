"""Model quality per registered version, written from the registry as DVC metrics files."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from mlimages.tracking.champion import record_evaluation
from mlimages.tracking.model_metrics import version_rows, write_model_metrics


def test_a_version_gives_one_row_per_size_and_a_map_row():
    tags = {"eval.top1_224": "0.75123", "eval.top5_224": "0.9", "eval.top1_299": "0.8", "eval.top5_299": "0.95",
            "eval.map_all": "0.31", "eval.top1_224_clean": "0.7", "eval.protocol": "x", "git_commit": "abc"}
    assert version_rows("mlimages-resnet101-imagenet", "3", tags) == {
        "resnet101-imagenet-v3-224.json": {"top1": 0.7512, "top5": 0.9},
        "resnet101-imagenet-v3-299.json": {"top1": 0.8, "top5": 0.95},
        "resnet101-imagenet-v3.json": {"map": 0.31},
    }
    assert version_rows("mlimages-resnet101-imagenet", "4", {"git_commit": "abc"}) == {}  # never evaluated


def test_files_follow_the_registry(served_model, tmp_path):
    client = mlflow.MlflowClient()
    out = tmp_path / "metrics" / "models"
    out.mkdir(parents=True)
    (out / f"{served_model}-v9-224.json").write_text("{}")  # a version that is gone
    (out / "other-model-v1-224.json").write_text('{"top1": 0.1}')  # another model's file stays
    written = write_model_metrics(client, [served_model], out)
    assert [path.name for path in written] == [f"{served_model}-v1-224.json"]
    assert json.loads(written[0].read_text()) == {"top1": 0.5}
    assert sorted(path.name for path in out.iterdir()) == sorted([f"{served_model}-v1-224.json", "other-model-v1-224.json"])
    record_evaluation(served_model, "1", {"top1_224": 0.625, "top5_224": 1.0}, "test", "top1_224")
    try:
        write_model_metrics(client, [served_model], out)
        assert json.loads(written[0].read_text()) == {"top1": 0.625, "top5": 1.0}
    finally:  # the session's other tests expect the fixture's evaluation
        record_evaluation(served_model, "1", {"top1_224": 0.5}, "test", "top1_224")


def test_registry_list_writes_them_after_an_evaluation_by_hand(served_model, tmp_path, capsys):
    from mlimages.cli import main

    params = Path(__file__).resolve().parents[2] / "params.yaml"
    assert main(["registry", "list", "--name", served_model, "--params", str(params), "--metrics", str(tmp_path)]) == 0
    assert f"wrote 1 metrics files to {tmp_path}/" in capsys.readouterr().out
    assert json.loads((tmp_path / f"{served_model}-v1-224.json").read_text()) == {"top1": 0.5}
