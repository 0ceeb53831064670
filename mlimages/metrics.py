"""Evaluation metrics in plain NumPy: top-k accuracy, mAP, CP/CR/CF1, OP/OR/OF1, precision@k.

Every definition is pinned here because published numbers are only comparable when ties and
empty classes are handled the same way:

- Top-k ties: among equal scores the higher class index ranks first, exactly as scikit-learn's
  `top_k_accuracy_score` orders them, so our numbers match the reference implementation.
  ``ties="pessimistic"`` instead ranks every tied class before the true one (a constant model then
  scores 0, never 1/C).
- Multi-label targets may be soft confidences; a class is positive when its confidence is
  >= `positive_threshold` (0.5).
- mAP is the mean of scikit-learn's step-wise average precision over classes with at least one
  positive; classes without positives have no defined AP and are left out (not counted as 0).
- CP/CR average per-class precision/recall over the same classes (a class never predicted has
  precision 0); OP/OR pool every decision of the class set; predictions are scores >= 0.5.
- precision@k is averaged over images with at least one positive; ties rank lower indices first.
"""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5


def top_k_accuracy(labels, scores, k: int, ties: str = "index") -> float:
    """Fraction of images whose true class is among the `k` highest scores.

    Args:
        labels: (n,) int true class per image.
        scores: (n, classes) logits or probabilities.
        k: how many guesses count.
        ties: ``"index"`` (scikit-learn's order: higher index first) or ``"pessimistic"``.

    Returns:
        Accuracy in [0, 1]; 0.0 for no images.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if len(labels) == 0:
        return 0.0
    true_score = scores[np.arange(len(labels)), labels][:, None]  # (n, 1)
    ahead = (scores > true_score).sum(axis=1)
    tied = scores == true_score
    if ties == "index":
        ahead += (tied & (np.arange(scores.shape[1])[None, :] > labels[:, None])).sum(axis=1)
    elif ties == "pessimistic":
        ahead += tied.sum(axis=1) - 1
    else:
        raise ValueError(f"ties must be 'index' or 'pessimistic', got {ties!r}")
    return float(np.mean(ahead < k))


def average_precision(positives, scores) -> float:
    """Step-wise average precision of one class (scikit-learn's definition, no interpolation).

    Tied scores form one threshold, so the result does not depend on the order of ties.

    Args:
        positives: (n,) bool, the images that have the class.
        scores: (n,) score of the class per image.

    Returns:
        AP in [0, 1], or NaN when the class has no positive.
    """
    positives = np.asarray(positives, dtype=bool)
    total = positives.sum()
    if total == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    hits = np.cumsum(positives[order])
    # last position of each group of equal scores = one threshold
    ends = np.r_[np.nonzero(np.diff(sorted_scores))[0], len(order) - 1]
    true_pos = hits[ends]
    precision = true_pos / (ends + 1)
    recall_gain = np.diff(np.r_[0, true_pos]) / total
    return float(np.sum(recall_gain * precision))


def mean_average_precision(positives, scores) -> float:
    """Mean AP over the classes (columns) with at least one positive; NaN when there are none."""
    positives = np.asarray(positives, dtype=bool)
    scores = np.asarray(scores)
    values = [average_precision(positives[:, c], scores[:, c]) for c in np.nonzero(positives.any(axis=0))[0]]
    return float(np.mean(values)) if values else float("nan")


def precision_at_k(positives, scores, k: int) -> float:
    """Mean over images with a positive of (positives among the top `k` scores) / k."""
    positives = np.asarray(positives, dtype=bool)
    keep = positives.any(axis=1)
    if not keep.any():
        return float("nan")
    top = np.argsort(-np.asarray(scores, dtype=np.float64)[keep], axis=1, kind="stable")[:, :k]
    return float(np.mean(np.take_along_axis(positives[keep], top, axis=1).sum(axis=1) / k))


def threshold_metrics(positives, scores, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    """CP, CR, CF1 (per class, averaged) and OP, OR, OF1 (pooled) at `threshold`.

    Args:
        positives: (n, classes) bool ground truth.
        scores: (n, classes) probabilities; a class is predicted when its score >= `threshold`.

    Returns:
        ``{"cp", "cr", "cf1", "op", "or", "of1"}``.
    """
    positives = np.asarray(positives, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    correct = (positives & predicted).sum(axis=0)
    n_pred, n_true = predicted.sum(axis=0), positives.sum(axis=0)
    present = n_true > 0
    if present.any():
        cp = float(np.mean(np.divide(correct, n_pred, out=np.zeros(len(correct)), where=n_pred > 0)[present]))
        cr = float(np.mean(correct[present] / n_true[present]))
    else:
        cp = cr = float("nan")
    op = float(correct.sum() / n_pred.sum()) if n_pred.sum() else 0.0
    orec = float(correct.sum() / n_true.sum()) if n_true.sum() else float("nan")
    return {"cp": cp, "cr": cr, "cf1": _f1(cp, cr), "op": op, "or": orec, "of1": _f1(op, orec)}


def _f1(precision: float, recall: float) -> float:
    if np.isnan(precision) or np.isnan(recall):
        return float("nan")
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def multi_label_metrics(targets, scores, classes=None, threshold: float = DEFAULT_THRESHOLD,
                        ks: tuple[int, ...] = (1, 3, 5), positive_threshold: float = 0.5) -> dict[str, float]:
    """Every multi-label metric over one class set.

    Args:
        targets: (n, classes) confidences in [0, 1] (soft labels allowed).
        scores: (n, classes) probabilities (sigmoid outputs).
        classes: optional class indices to restrict to (e.g. the trainable classes).
        threshold: decision threshold for CP/CR/OP/OR.
        ks: the k of each precision@k.
        positive_threshold: confidence from which a label counts as positive.

    Returns:
        ``{"map", "cp", "cr", "cf1", "op", "or", "of1", "precision_at_K"..., "classes_with_positives"}``.
    """
    positives = np.asarray(targets) >= positive_threshold
    scores = np.asarray(scores)
    if classes is not None:
        positives, scores = positives[:, classes], scores[:, classes]
    result = {"map": mean_average_precision(positives, scores)}
    result.update(threshold_metrics(positives, scores, threshold))
    for k in ks:
        result[f"precision_at_{k}"] = precision_at_k(positives, scores, k)
    result["classes_with_positives"] = float(positives.any(axis=0).sum())
    return result
