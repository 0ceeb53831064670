"""Groups of copies: exact duplicates by sha256, near-duplicates by joining close pairs.

Near-duplicate pairs are joined transitively with a union-find over row numbers (a copy of a
copy is in the same group even when the two ends are farther apart than the threshold), which
is what a person deduplicating by hand does too. The parent array is numpy (8 bytes per image,
140 MB for 17.6M), pairs are fed in chunks as the search streams them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np


class UnionFind:
    """Disjoint sets over rows 0 .. n-1 (path halving, union by smaller root index)."""

    def __init__(self, count: int):
        self.parent = np.arange(count, dtype=np.int64)

    def find(self, row: int) -> int:
        parent = self.parent
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = int(parent[row])
        return row

    def union_pairs(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Join each pair (rows[k], cols[k])."""
        for a, b in zip(rows.tolist(), cols.tolist()):
            root_a, root_b = self.find(a), self.find(b)
            if root_a != root_b:  # the smaller row stays the root: a group's root is its first image
                self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def groups(self) -> list[list[int]]:
        """Sets of two or more rows, each sorted, ordered by their first row."""
        roots = self.parent.copy()
        while True:  # pointer jumping: every row reaches its root in O(log depth) numpy passes
            jumped = roots[roots]
            if np.array_equal(jumped, roots):
                return _groups_of_labels(roots)
            roots = jumped


def _groups_of_labels(labels: np.ndarray) -> list[list[int]]:
    """Rows sharing a label, for labels held by two or more rows."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    cuts = np.flatnonzero(np.diff(sorted_labels)) + 1
    groups = [part.tolist() for part in np.split(order, cuts) if len(part) > 1]
    return sorted((sorted(group) for group in groups), key=lambda group: group[0])


def group_near_duplicates(count: int, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> list[list[int]]:
    """Connected components of size >= 2 of the graph whose edges are the pairs.

    Args:
        count: number of rows.
        pairs: chunks of (rows, cols), e.g. `search.iter_self_pairs`.
    """
    sets = UnionFind(count)
    for rows, cols in pairs:
        sets.union_pairs(rows, cols)
    return sets.groups()


def group_exact_duplicates(digests: Sequence[str]) -> list[list[int]]:
    """Rows whose sha256 digests are equal (the same bytes under different URLs)."""
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, digest in enumerate(digests):
        rows_of[digest].append(row)
    return sorted((rows for rows in rows_of.values() if len(rows) > 1), key=lambda rows: rows[0])
