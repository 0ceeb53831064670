"""Losses of pretraining and finetuning, as pure keras.ops functions (any Keras backend).

The pretraining loss is the class-wise adaptive re-weighted sigmoid cross-entropy of Tencent ML-Images
(its `train.py`). With m images, logits z, labels y in [0, 1] or -1 (ignore), pos_weight eta,
mask_thres tau and neg_select q:

    l_ij = -[eta * y_ij * log sigmoid(z_ij) + (1 - y_ij) * log(1 - sigmoid(z_ij))],  u_ij = [y_ij != -1]
    P_j  = [some image of the batch has y_ij >= tau],  N_j = 1 - P_j,  s_j ~ Bernoulli(q) per step
    c+_j <- P_j ? c+_j + 1 : 0          c-_j <- P_j ? 0 : c-_j + s_j      (before the weights)
    r+_j = P_j * max(0.01, log10(10 / (0.01 + c+_j)))
    r-_j = N_j * s_j * (log10(10 / (8 + c-_j)) if > 0.01 else 0.001)
    L    = sum_j (r+_j + r-_j) * (1/m) sum_i u_ij l_ij

A class positive in many consecutive batches is down-weighted (it is learnt already), a class absent
from the batch is trained as a negative only for a random subset of steps and with a small weight.
The counters are state that depends only on the label stream, so the caller keeps them (a variable, or
a scan beside the data) and draws s_j; the functions here stay pure and testable.
"""

from __future__ import annotations

import keras
from keras import ops

IGNORE_LABEL = -1.0


def find_positive_classes(labels, mask_thres: float = 0.7):
    """P_j: 1.0 for classes with at least one label >= `mask_thres` in the batch.

    Args:
        labels: (batch, classes) confidences in [0, 1], or -1 to ignore.
        mask_thres: confidence from which a label counts as positive (tau).

    Returns:
        (classes,) float32 of 0/1.
    """
    labels = ops.cast(labels, "float32")
    return ops.cast(ops.any(labels >= mask_thres, axis=0), "float32")


def draw_negative_sample(num_classes: int, neg_select: float, seed=None):
    """s_j ~ Bernoulli(`neg_select`), the classes trained as negatives this step.

    Args:
        num_classes: C.
        neg_select: probability q (0.1 in the released training script).
        seed: an int or a `keras.random.SeedGenerator` (use a generator inside compiled steps).

    Returns:
        (classes,) float32 of 0/1.
    """
    uniform = keras.random.uniform((num_classes,), seed=seed)
    return ops.cast(uniform <= neg_select, "float32")


def update_adaptive_counters(labels, pos_counts, neg_counts, neg_sample, mask_thres: float = 0.7):
    """Advance the per-class counters by one batch (done before computing the weights).

    Args:
        labels: (batch, classes) confidences, -1 = ignore.
        pos_counts: (classes,) c+, consecutive batches in which the class was positive.
        neg_counts: (classes,) c-, selected steps since the class was last positive.
        neg_sample: (classes,) s_j of this step, from `draw_negative_sample`.
        mask_thres: tau.

    Returns:
        (pos_counts, neg_counts) after this batch, float32.
    """
    positive = find_positive_classes(labels, mask_thres)
    pos_counts = ops.cast(pos_counts, "float32")
    neg_counts = ops.cast(neg_counts, "float32")
    neg_sample = ops.cast(neg_sample, "float32")
    new_pos = positive * (pos_counts + 1.0)
    new_neg = (1.0 - positive) * (neg_counts + neg_sample)
    return new_pos, new_neg


def adaptive_class_weights(pos_counts, neg_counts, neg_sample):
    """r+_j + r-_j from the counters as updated for this batch.

    After `update_adaptive_counters`, c+_j > 0 exactly when the class is positive in the batch (P_j),
    so the weights need only the updated counters and this step's negative sample.

    Args:
        pos_counts: (classes,) c+ after the update.
        neg_counts: (classes,) c- after the update.
        neg_sample: (classes,) s_j of this step.

    Returns:
        (classes,) float32 class weights.
    """
    pos_counts = ops.cast(pos_counts, "float32")
    neg_counts = ops.cast(neg_counts, "float32")
    positive = ops.cast(pos_counts > 0, "float32")
    selected_negative = (1.0 - positive) * ops.cast(neg_sample, "float32")
    pos_weight = ops.maximum(0.01, _log10(10.0 / (0.01 + pos_counts)))
    neg_value = _log10(10.0 / (8.0 + neg_counts))
    neg_weight = ops.where(neg_value > 0.01, neg_value, 0.001)
    return positive * pos_weight + selected_negative * neg_weight


def _log10(x):
    return ops.log(x) / ops.log(10.0)


def _element_sigmoid_loss(labels, logits, pos_weight: float):
    """l_ij (with u_ij applied): -[eta y log sigma(z) + (1-y) log(1-sigma(z))], 0 where y = -1."""
    labels = ops.cast(labels, "float32")
    logits = ops.cast(logits, "float32")
    known = ops.cast(ops.not_equal(labels, IGNORE_LABEL), "float32")
    targets = labels * known  # ignored entries become 0 so every term stays finite
    # -log sigma(z) = softplus(-z) and -log(1 - sigma(z)) = softplus(z), both stable for large |z|.
    loss = pos_weight * targets * ops.softplus(-logits) + (1.0 - targets) * ops.softplus(logits)
    return loss * known, known


def adaptive_sigmoid_cross_entropy(labels, logits, class_weights, pos_weight: float = 12.0):
    """The paper's pretraining loss: sum_j w_j * (1/m) sum_i u_ij l_ij.

    Args:
        labels: (batch, classes) confidences in [0, 1], -1 = ignore.
        logits: (batch, classes).
        class_weights: (classes,) from `adaptive_class_weights` (treated as constants).
        pos_weight: eta, the weight of positive labels (12 in the original).

    Returns:
        scalar float32 loss (weight decay not included).
    """
    loss, _ = _element_sigmoid_loss(labels, logits, pos_weight)
    per_class = ops.mean(loss, axis=0)  # (classes,), divided by the whole batch m like the original
    weights = ops.stop_gradient(ops.cast(class_weights, "float32"))
    return ops.sum(per_class * weights)


def sigmoid_cross_entropy(labels, logits, pos_weight: float = 1.0):
    """Plain (optionally positive-weighted) sigmoid cross-entropy, averaged over the known labels.

    Args:
        labels: (batch, classes) confidences in [0, 1], -1 = ignore.
        logits: (batch, classes).
        pos_weight: weight of the positive term (1 = ordinary binary cross-entropy).

    Returns:
        scalar float32: the mean of l_ij over entries with y_ij != -1 (0 when there are none).
    """
    loss, known = _element_sigmoid_loss(labels, logits, pos_weight)
    return ops.sum(loss) / ops.maximum(ops.sum(known), 1.0)


def softmax_cross_entropy(labels, logits, label_smoothing: float = 0.0):
    """Softmax cross-entropy for single-label finetuning, with label smoothing.

    Args:
        labels: (batch,) integer class indices, or (batch, classes) one-hot / probabilities.
        logits: (batch, classes).
        label_smoothing: epsilon; targets become (1 - epsilon) * y + epsilon / classes.

    Returns:
        scalar float32, the mean over the batch.
    """
    logits = ops.cast(logits, "float32")
    num_classes = logits.shape[-1]
    if len(ops.shape(labels)) == 1:
        labels = ops.one_hot(ops.cast(labels, "int32"), num_classes)
    targets = ops.cast(labels, "float32")
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    log_probs = ops.log_softmax(logits, axis=-1)
    return ops.mean(-ops.sum(targets * log_probs, axis=-1))


def select_decay_weights(model: keras.Model) -> list:
    """The weights weight decay applies to: every trainable weight except batch-norm ones.

    As in the original (`'batch_normalization' not in v.name`), convolution kernels and the dense
    kernel and bias are decayed, BN gamma/beta are not. Chosen by layer type, not by name, and
    through nested models; frozen layers are left out because their weights are not trainable.
    """
    batch_norms = [layer for layer in _walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    skipped = {id(weight) for layer in batch_norms for weight in layer.weights}
    return [w for w in model.trainable_weights if id(w) not in skipped]


def _walk_layers(layer):
    yield layer
    for child in getattr(layer, "layers", []):
        yield from _walk_layers(child)


def compute_weight_decay(weights, rate: float = 1e-4):
    """L2 penalty rate * sum(w^2) / 2 (TF's l2_loss convention, as the original added to its loss).

    Args:
        weights: from `select_decay_weights`.
        rate: the weight-decay factor (1e-4).

    Returns:
        scalar float32.
    """
    total = ops.convert_to_tensor(0.0, "float32")
    for weight in weights:
        total = total + ops.sum(ops.square(ops.cast(weight, "float32")))
    return rate * 0.5 * total
