"""The evaluation protocol: metrics against an independent computation, 10-crop geometry, max_images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import top_k_accuracy_score

from mlimages.data.preprocess import eval_crop, resize_and_center_crop, scale_pixels, ten_crops
from mlimages.config import load_params
from mlimages.evaluate import EvaluateConfig, evaluate_records
from mlimages.records.index import list_shards
from mlimages.records.reader import iter_records

from tests.pipelines import REPO
from tests.tracking_fixtures import build_tiny_classifier

CFG = load_params("evaluate", EvaluateConfig, REPO / "params.yaml", {"sizes": [32, 48], "batch_size": 5})


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


def test_clean_score_is_the_score_of_the_records_without_the_excluded_ones(tmp_path):
    from tests.factories import make_colour_jpeg, write_record_folder
    from tests.tracking_fixtures import COLOURS

    examples = [(make_colour_jpeg(COLOURS[i % 3], seed=i), [(i * 7) % 3], [1.0]) for i in range(9)]
    full = write_record_folder(tmp_path / "full", "single", 3, examples)
    without = write_record_folder(tmp_path / "without", "single", 3, examples[:4] + examples[5:])
    cfg = dataclasses.replace(CFG, sizes=(32,), batch_size=4)
    model = build_tiny_classifier(3, seed=4)
    results, protocol, count = evaluate_records(model, full, cfg, exclude=frozenset({"4.jpg", "not-a-record.jpg"}))
    reference, _, reference_count = evaluate_records(model, without, cfg)
    assert results["leaked_left_out"] == 1 and (count, reference_count) == (9, 8)
    assert results["top1_32_clean"] == reference["top1_32"] and results["top5_32_clean"] == reference["top5_32"]
    assert results["top1_32_clean"] != results["top1_32"]  # the left-out record changes the score (3/9 -> 3/8)
    assert "without the 1 of them leaked" in protocol
    _, protocol, _ = evaluate_records(model, full, cfg, exclude=frozenset({"not-a-record.jpg"}))
    assert protocol.endswith("; none of them leaked from pretraining")
    plain, _, _ = evaluate_records(model, full, cfg)
    assert plain == {k: v for k, v in results.items() if k in ("top1_32", "top5_32")} and len(results) == 5


def test_clean_multi_label_metrics_leave_out_the_excluded_records(multi_records):
    results, _, _ = evaluate_records(build_tiny_classifier(4, 3), multi_records, CFG, exclude=frozenset({"0.jpg"}))
    assert results["leaked_left_out"] == 1
    assert {"map_all_clean", "of1_all_clean", "map_all"} <= set(results) and "map_trainable_clean" not in results
