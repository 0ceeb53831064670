"""The evaluate entry point: registers a run's checkpoints, evaluates them, records results, moves champion."""

from __future__ import annotations

import mlflow
import pytest

from tests.factories import write_params
from tests.pipelines import load_pipeline
from tests.tracking_fixtures import read_json


@pytest.mark.slow  # the evaluate entry point end to end
def test_entry_point_registers_evaluates_and_moves_champion(tracking_store, finetune_run, single_records, tmp_path):
    main = load_pipeline("evaluate").main
    params = write_params(tmp_path / "params.yaml", evaluate={"sizes": [32, 48], "batch_size": 6},
                          registry={"finetuned_metric": "top1_32"})
    out = tmp_path / "eval.json"
    args = ["--model-uri", f"runs:/{finetune_run}", "--records", str(single_records), "--out", str(out),
            "--params", str(params)]
    assert main(args) == 0
    results = read_json(out)["results"]
    assert [r["step"] for r in results] == [10, 20] and {r["name"] for r in results} == {"mlimages-resnet50-imagenet"}
    client = mlflow.MlflowClient()
    name = results[0]["name"]
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{name}'")}
    assert len(versions) == 2
    best = max(results, key=lambda r: r["metrics"]["top1_32"])
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["eval.top1_32"] == f"{best['metrics']['top1_32']:.6g}"
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "2"
    for version in versions.values():
        assert version.run_id == finetune_run
        assert version.tags["git_commit"] == "abc123" and version.tags["mlimages.data_version"] == "0123456789ab"
        assert not any(key.startswith("data.") for key in version.tags)  # the per-output table is in the card
        assert "eval.top5_48" in version.tags and "eval.protocol" in version.tags
        card = version.description
        assert "CC BY 4.0" in card and "BSD-3-Clause" in card and "top1_48" in card and "Intended use" in card
        assert "`build_imagenet.data/tfrecords/imagenet`: md5 `d41d8cd9`" in card and "`0123456789ab`" in card
        model = mlflow.get_logged_model(version.source.removeprefix("models:/"))
        assert {m.key for m in model.metrics} >= {"eval_top1_32", "eval_top5_48", "loss"}
        assert model.params.get("depth") == "50"  # the training run's params
    # Evaluating again registers nothing new; one version can be re-evaluated through its alias.
    assert main(args) == 0
    assert len(client.search_model_versions(f"name = '{name}'")) == 2
    assert main(["--model-uri", f"models:/{name}@candidate"] + args[2:]) == 0
    (again,) = read_json(out)["results"]
    assert again["version"] == 2 and again["metrics"] == results[1]["metrics"]
