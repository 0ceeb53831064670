"""Evaluation: metrics against an independent computation, 10-crop geometry, the full entry point."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import top_k_accuracy_score

from mlimages.data.preprocess import eval_crop, resize_and_center_crop, scale_pixels
from mlimages.evaluate import EvaluateConfig, evaluate_records, ten_crops
from mlimages.records.reader import iter_records, list_shards

from .conftest import build_tiny_classifier, load_pipeline, read_json

CFG = EvaluateConfig(sizes=(32, 48), batch_size=5)


def test_single_label_top_k_matches_an_independent_computation(single_records):
    model = build_tiny_classifier(3, seed=1)
    results, protocol, count = evaluate_records(model, single_records, CFG)
    records = list(iter_records(list_shards(single_records)))
    labels = np.array([r.labels[0] for r in records])
    for size in (32, 48):
        images = np.stack([eval_crop(tf.constant(r.image), size).numpy() for r in records])
        probs = tf.nn.softmax(model(images, training=False)).numpy()
        assert results[f"top1_{size}"] == pytest.approx(top_k_accuracy_score(labels, probs, k=1, labels=range(3)))
        assert results[f"top5_{size}"] == 1.0  # only 3 classes
    assert count == 12
    assert "shorter side 37" in protocol and "shorter side 55" in protocol and "centre crop" in protocol


def test_max_images_limits_the_evaluated_set(single_records):
    results, protocol, count = evaluate_records(build_tiny_classifier(3, 1), single_records,
                                                dataclasses.replace(CFG, max_images=4, sizes=(32,)))
    assert count == 4 and "first 4 images" in protocol and set(results) == {"top1_32", "top5_32"}


def test_ten_crops_are_corners_centre_and_mirrors():
    image = tf.constant(np.random.default_rng(0).integers(0, 255, (40, 60, 3)), tf.uint8)
    crops = ten_crops(image, 16, 0.5).numpy()  # shorter side 32 -> (32, 48)
    assert crops.shape == (10, 16, 16, 3)
    centre = scale_pixels(resize_and_center_crop(image, 16, 0.5)).numpy()
    np.testing.assert_allclose(crops[4], centre, atol=1e-5)
    np.testing.assert_allclose(crops[5], crops[0][:, ::-1], atol=1e-6)
    assert not np.allclose(crops[0], crops[3])


def test_ten_crop_evaluation_runs_and_is_recorded(single_records):
    cfg = dataclasses.replace(CFG, sizes=(32,), ten_crop=True)
    results, protocol, _ = evaluate_records(build_tiny_classifier(3, 2), single_records, cfg)
    assert 0.0 <= results["top1_32"] <= 1.0 and "10-crop" in protocol


def test_multi_label_metrics_all_and_trainable(multi_records):
    results, _, count = evaluate_records(build_tiny_classifier(4, 3), multi_records, CFG, trainable=[0, 1])
    assert count == 10
    assert results["classes_with_positives_all"] == 3  # class 3 has no positive
    assert results["classes_with_positives_trainable"] == 2
    assert {"map_all", "cf1_all", "of1_all", "precision_at_1_all", "map_trainable"} <= set(results)
    assert not any(key.startswith("top1") for key in results)


@pytest.mark.slow  # the evaluate entry point end to end
def test_entry_point_registers_evaluates_and_moves_champion(tracking_store, finetune_run, single_records, tmp_path):
    main = load_pipeline("evaluate").main
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  sizes: [32, 48]\n  batch_size: 6\nregistry:\n  finetuned_metric: top1_32\n"
                      "stats:\n  trainable_min_images: 1\n")
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
        assert version.tags["git_commit"] == "abc123" and "data.build_imagenet.data/tfrecords/imagenet" in version.tags
        assert "eval.top5_48" in version.tags and "eval.protocol" in version.tags
        card = version.description
        assert "CC BY 4.0" in card and "BSD-3-Clause" in card and "top1_48" in card and "Intended use" in card
        model = mlflow.get_logged_model(version.tags["mlimages.serving_model"])
        assert {m.key for m in model.metrics} >= {"eval_top1_32", "eval_top5_48", "loss"}
        assert model.params.get("depth") == "50"
    # Evaluating again registers nothing new; one version can be re-evaluated through its alias.
    assert main(args) == 0
    assert len(client.search_model_versions(f"name = '{name}'")) == 2
    assert main(["--model-uri", f"models:/{name}@candidate"] + args[2:]) == 0
    (again,) = read_json(out)["results"]
    assert again["version"] == 2 and again["metrics"] == results[1]["metrics"]
