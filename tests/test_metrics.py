"""Every metric against scikit-learn on random and edge-case inputs (ties, classes without positives)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score, top_k_accuracy_score

from mlimages import metrics


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_matches_sklearn_on_random_scores(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(200, 7))
    labels = rng.integers(0, 7, size=200)
    assert metrics.top_k_accuracy(labels, scores, k) == pytest.approx(
        top_k_accuracy_score(labels, scores, k=k, labels=range(7)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_ties_follow_sklearn_order(k):
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, size=(300, 6)).astype(float)  # many ties
    labels = rng.integers(0, 6, size=300)
    assert metrics.top_k_accuracy(labels, scores, k) == pytest.approx(
        top_k_accuracy_score(labels, scores, k=k, labels=range(6)))


def test_top_k_constant_scores_index_vs_pessimistic():
    scores = np.ones((4, 4))
    labels = np.array([0, 1, 2, 3])
    assert metrics.top_k_accuracy(labels, scores, 1) == 0.25  # only class 3 is "first"
    assert metrics.top_k_accuracy(labels, scores, 1, ties="pessimistic") == 0.0
    assert metrics.top_k_accuracy(labels, scores, 4, ties="pessimistic") == 1.0


def test_top_k_empty_and_bad_ties():
    assert metrics.top_k_accuracy(np.zeros(0, int), np.zeros((0, 3)), 1) == 0.0
    with pytest.raises(ValueError):
        metrics.top_k_accuracy([0], [[1.0, 2.0]], 1, ties="random")


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    positives = rng.random(100) < 0.2
    positives[0] = True
    scores = rng.random(100)
    assert metrics.average_precision(positives, scores) == pytest.approx(average_precision_score(positives, scores))
    rounded = np.round(scores, 1)  # ties
    assert metrics.average_precision(positives, rounded) == pytest.approx(average_precision_score(positives, rounded))


def test_average_precision_edge_cases():
    assert np.isnan(metrics.average_precision([False, False], [0.3, 0.9]))
    assert metrics.average_precision([True, True], [0.1, 0.1]) == 1.0
    assert metrics.average_precision([True, False], [0.5, 0.5]) == pytest.approx(0.5)
    assert metrics.average_precision([False, True], [0.9, 0.1]) == pytest.approx(0.5)


def test_map_skips_classes_without_positives():
    rng = np.random.default_rng(3)
    targets = (rng.random((60, 8)) < 0.3).astype(float)
    targets[:, [2, 5]] = 0.0  # no positives
    scores = np.round(rng.random((60, 8)), 2)
    present = [c for c in range(8) if targets[:, c].any()]
    expected = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in present])
    assert metrics.mean_average_precision(targets > 0, scores) == pytest.approx(expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk_macro = average_precision_score(targets[:, present], scores[:, present], average="macro")
    assert metrics.mean_average_precision(targets > 0, scores) == pytest.approx(sk_macro)
    assert np.isnan(metrics.mean_average_precision(np.zeros((3, 2), bool), np.zeros((3, 2))))


@pytest.mark.parametrize("seed", range(4))
def test_threshold_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    positives = rng.random((80, 10)) < 0.3
    positives[:, 7] = False  # a class without positives
    scores = rng.random((80, 10))
    scores[:, 3] = 0.1  # a class never predicted: precision 0
    scores[0, 0] = 0.5  # exactly at the threshold counts as predicted
    got = metrics.threshold_metrics(positives, scores, 0.5)
    predicted = scores >= 0.5
    present = [c for c in range(10) if positives[:, c].any()]
    cp = precision_score(positives[:, present], predicted[:, present], average="macro", zero_division=0)
    cr = recall_score(positives[:, present], predicted[:, present], average="macro", zero_division=0)
    assert got["cp"] == pytest.approx(cp)
    assert got["cr"] == pytest.approx(cr)
    assert got["cf1"] == pytest.approx(2 * cp * cr / (cp + cr))
    op = precision_score(positives, predicted, average="micro", zero_division=0)
    orec = recall_score(positives, predicted, average="micro", zero_division=0)
    assert got["op"] == pytest.approx(op)
    assert got["or"] == pytest.approx(orec)
    assert got["of1"] == pytest.approx(2 * op * orec / (op + orec))


def test_precision_at_k_by_hand():
    positives = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], bool)
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.2, 0.2]])
    # image 2 (no positives) is left out; image 3 ties: lower index first -> class 0, then 1
    assert metrics.precision_at_k(positives, scores, 1) == pytest.approx((1 + 0) / 2)
    assert metrics.precision_at_k(positives, scores, 2) == pytest.approx((0.5 + 0.5) / 2)
    assert metrics.precision_at_k(positives, scores, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_multi_label_metrics_restricts_to_class_subset_and_soft_labels():
    rng = np.random.default_rng(7)
    targets = rng.choice([0.0, 0.3, 0.8, 1.0], size=(50, 6))
    scores = rng.random((50, 6))
    subset = np.array([0, 2, 4])
    all_classes = metrics.multi_label_metrics(targets, scores)
    trainable = metrics.multi_label_metrics(targets, scores, classes=subset)
    expected = np.mean([average_precision_score(targets[:, c] >= 0.5, scores[:, c]) for c in subset])
    assert trainable["map"] == pytest.approx(expected)
    assert trainable["classes_with_positives"] == 3
    assert all_classes["classes_with_positives"] == 6
    assert set(all_classes) >= {"map", "cp", "cr", "cf1", "op", "or", "of1", "precision_at_1", "precision_at_5"}
