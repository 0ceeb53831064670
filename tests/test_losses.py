"""The adaptive re-weighted sigmoid loss (golden values, NumPy cross-check, counters) and the others."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mlimages import losses  # noqa: E402
from mlimages.models import resnet  # noqa: E402


def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_adaptive_step(labels, logits, pos_counts, neg_counts, neg_sample, pos_weight=12.0, tau=0.7):
    """The formula of DESIGN section 4, written directly in NumPy (float64), one batch."""
    positive = (labels >= tau).sum(axis=0) > 0
    pos_counts = np.where(positive, pos_counts + 1, 0.0)
    neg_counts = np.where(positive, 0.0, neg_counts + neg_sample)
    r_pos = positive * np.maximum(0.01, np.log10(10 / (0.01 + pos_counts)))
    neg_value = np.log10(10 / (8 + neg_counts))
    r_neg = (~positive) * neg_sample * np.where(neg_value > 0.01, neg_value, 0.001)
    sigma = 1 / (1 + np.exp(-logits))
    element = -(pos_weight * labels * np.log(sigma) + (1 - labels) * np.log(1 - sigma))
    known = labels != -1
    per_class = np.where(known, element, 0.0).sum(axis=0) / labels.shape[0]
    return float(((r_pos + r_neg) * per_class).sum()), pos_counts, neg_counts


@pytest.mark.parametrize("count, weight", [(1, 0.9957), (2, 0.6968), (5, 0.3002), (10, 0.01), (11, 0.01), (500, 0.01)])
def test_golden_positive_weights(count, weight):
    got = losses.adaptive_class_weights(np.array([count], "float32"), np.zeros(1), np.zeros(1))
    assert float(got[0]) == pytest.approx(weight, abs=5e-5)


@pytest.mark.parametrize("count, weight", [(1, 0.0458), (2, 0.001), (3, 0.001), (40, 0.001)])
def test_golden_negative_weights(count, weight):
    got = losses.adaptive_class_weights(np.zeros(1), np.array([count], "float32"), np.ones(1))
    assert float(got[0]) == pytest.approx(weight, abs=5e-5)


def test_unselected_negative_class_has_no_weight():
    got = losses.adaptive_class_weights(np.zeros(2), np.array([1.0, 1.0]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(np.asarray(got), [0.0, 0.0458], atol=5e-5)


def test_counters_over_a_sequence_of_batches():
    # class 0 positive in batches 1-3, then absent; class 1 soft (0.5 < tau) then positive; class 2 ignored.
    batches = [
        [[1.0, 0.5, -1], [0.0, 0.0, -1]],
        [[0.8, 0.0, -1], [0.0, 0.0, -1]],
        [[0.0, 0.7, -1], [1.0, 0.0, -1]],
        [[0.0, 0.0, -1], [0.0, 0.0, -1]],
        [[0.0, 0.0, -1], [0.0, 0.0, -1]],
    ]
    samples = [[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 1, 1]]
    expected_pos = [[1, 0, 0], [2, 0, 0], [3, 1, 0], [0, 0, 0], [0, 0, 0]]
    expected_neg = [[0, 1, 1], [0, 2, 2], [0, 0, 3], [1, 1, 3], [2, 2, 4]]
    pos, neg = np.zeros(3), np.zeros(3)
    for labels, sample, want_pos, want_neg in zip(batches, samples, expected_pos, expected_neg):
        pos, neg = losses.update_adaptive_counters(np.array(labels, "float32"), pos, neg, np.array(sample, "float32"))
        np.testing.assert_array_equal(np.asarray(pos), want_pos)
        np.testing.assert_array_equal(np.asarray(neg), want_neg)


def test_loss_matches_numpy_formula_on_random_batches():
    rng = np.random.default_rng(0)
    num_classes = 40
    pos, neg = np.zeros(num_classes), np.zeros(num_classes)
    np_pos, np_neg = pos.copy(), neg.copy()
    for _ in range(6):
        labels = rng.choice([0.0, 0.0, 0.0, 1.0, 0.9, 0.6, 0.3, -1.0], size=(8, num_classes)).astype("float32")
        labels[:, :10] = 0.0  # some classes absent for several batches so c- grows
        logits = rng.normal(0, 3, size=(8, num_classes)).astype("float32")
        sample = (rng.uniform(size=num_classes) <= 0.3).astype("float32")
        pos, neg = losses.update_adaptive_counters(labels, pos, neg, sample)
        weights = losses.adaptive_class_weights(pos, neg, sample)
        got = float(losses.adaptive_sigmoid_cross_entropy(labels, logits, weights, pos_weight=12.0))
        want, np_pos, np_neg = np_adaptive_step(labels.astype(float), logits.astype(float), np_pos, np_neg, sample)
        assert got == pytest.approx(want, rel=1e-5)
        np.testing.assert_array_equal(np.asarray(pos), np_pos)


def test_extreme_logits_stay_finite():
    labels = np.array([[1.0, 0.0, -1.0]], "float32")
    logits = np.array([[-200.0, 200.0, 1e4]], "float32")
    value = float(losses.adaptive_sigmoid_cross_entropy(labels, logits, np.ones(3, "float32")))
    assert value == pytest.approx(12 * 200 + 200, rel=1e-6)


def test_plain_sigmoid_cross_entropy_ignores_unknown_labels():
    labels = np.array([[1.0, 0.0, -1.0], [0.5, -1.0, 0.0]], "float32")
    logits = np.array([[0.3, -1.2, 50.0], [2.0, 9.0, -0.7]], "float32")
    known = labels != -1
    z, y = logits[known].astype(float), labels[known].astype(float)
    want = np.mean(y * np_softplus(-z) + (1 - y) * np_softplus(z))
    assert float(losses.sigmoid_cross_entropy(labels, logits)) == pytest.approx(want, rel=1e-6)


def test_softmax_cross_entropy_with_label_smoothing():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 6)).astype("float32")
    labels = np.array([0, 5, 2, 2])
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.eye(6)[labels] * 0.9 + 0.1 / 6
    want = -(targets * log_probs).sum(axis=1).mean()
    assert float(losses.softmax_cross_entropy(labels, logits, 0.1)) == pytest.approx(want, rel=1e-5)
    one_hot = np.eye(6, dtype="float32")[labels]
    assert float(losses.softmax_cross_entropy(one_hot, logits, 0.1)) == pytest.approx(want, rel=1e-5)


def test_weight_decay_skips_batch_norm_and_frozen_weights():
    backbone = resnet.build_backbone(50, blocks_per_stage=(1, 1, 1, 1), width_multiplier=0.125)
    model = resnet.build_classifier(backbone, 3)
    chosen = losses.select_decay_weights(model)
    # 17 convolution kernels + dense kernel and bias, no gamma/beta
    assert len(chosen) == 17 + 2
    assert all("gamma" not in w.path and "beta" not in w.path for w in chosen)
    want = 1e-4 * 0.5 * sum(float(np.sum(np.square(np.asarray(w)))) for w in chosen)
    assert float(losses.compute_weight_decay(chosen, 1e-4)) == pytest.approx(want, rel=1e-5)
    for layer in resnet.stage_layers(backbone, (0,)):
        layer.trainable = False
    assert len(losses.select_decay_weights(model)) == 17 + 2 - 5


def test_negative_sample_rate():
    sample = np.asarray(losses.draw_negative_sample(20_000, 0.1, seed=3))
    assert set(np.unique(sample)) <= {0.0, 1.0}
    assert sample.mean() == pytest.approx(0.1, abs=0.01)
