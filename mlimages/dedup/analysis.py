"""Near-duplicate groups within the training split and training images leaked into evaluation sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlimages.dedup.groups import group_exact_duplicates, group_near_duplicates
from mlimages.dedup.hashes import HashTable
from mlimages.dedup.search import DEFAULT_CHUNK, HammingIndex, iter_self_pairs


@dataclass(frozen=True)
class Group:
    """Rows of the training table that are copies of each other; `rows[0]` (the first line) is kept.

    `exact` is true when every member has the same bytes (same sha256).
    """

    rows: tuple[int, ...]
    exact: bool


@dataclass(frozen=True)
class Leak:
    """An evaluation image and a training image within the distance threshold."""

    eval_set: str
    eval_row: int
    train_row: int
    distance: int


def find_groups(train: HashTable, index: HammingIndex) -> list[Group]:
    """Near-duplicate groups (exact copies included) of the table `index` was built on, largest first.

    Exact duplicates have distance 0, so they always fall inside one near-duplicate group; a
    group is marked exact when its members' digests all agree.
    """
    groups = group_near_duplicates(len(train), iter_self_pairs(index))
    result = [Group(tuple(rows), bool(np.all(train.digests[rows] == train.digests[rows[0]]))) for rows in groups]
    return sorted(result, key=lambda group: (-len(group.rows), group.rows[0]))


def count_exact_groups(train: HashTable) -> int:
    """Sets of two or more training images with identical bytes (under different URLs)."""
    return len(group_exact_duplicates(train.digests.tolist()))


def find_leaks(eval_set: str, evaluation: HashTable, index: HammingIndex,
               chunk: int = DEFAULT_CHUNK) -> list[Leak]:
    """Every (evaluation image, training image) pair within the index's distance, by evaluation row."""
    leaks = []
    for begin in range(0, len(evaluation), chunk):
        queries = evaluation.phashes[begin:begin + chunk]
        rows, cols = index.search(queries)
        distances = np.bitwise_count(queries[rows] ^ index.hashes[cols])
        leaks += [Leak(eval_set, int(r) + begin, int(c), int(d)) for r, c, d in zip(rows, cols, distances)]
    return leaks


def merge_labels(metas: list[dict]) -> tuple[list[int], list[float]]:
    """The union of the members' labels, keeping the highest confidence of each class, by class."""
    best: dict[int, float] = {}
    for meta in metas:
        for label, confidence in zip(meta.get("labels", []), meta.get("confidences", [])):
            best[int(label)] = max(best.get(int(label), 0.0), float(confidence))
    labels = sorted(best)
    return labels, [best[label] for label in labels]
