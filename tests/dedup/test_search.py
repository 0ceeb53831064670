"""Multi-index Hamming search: exactly the brute-force pairs, and the union-find groups."""

from __future__ import annotations

import numpy as np
import pytest

from mlimages.dedup.groups import group_exact_duplicates, group_near_duplicates
from mlimages.dedup.search import HammingIndex, brute_force_pairs, choose_blocks, find_self_pairs, iter_self_pairs

from .world import random_hashes


def plant_neighbours(hashes: np.ndarray, count: int, seed: int, max_flips: int) -> np.ndarray:
    """Overwrite `count` rows with copies of other rows with 0..max_flips random bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = hashes.copy()
    targets = rng.choice(len(hashes), size=2 * count, replace=False)
    for source, target in zip(targets[:count], targets[count:]):
        flips = rng.choice(64, size=rng.integers(0, max_flips + 1), replace=False)
        hashes[target] = hashes[source] ^ np.uint64(sum(1 << int(bit) for bit in flips))
    return hashes


def sorted_pairs(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    pairs = np.column_stack([rows, cols])
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def test_index_gives_exactly_the_brute_force_pairs_on_100k_hashes():
    # neighbours at distances 0..6 around the threshold 4, some chained through a shared row
    hashes = plant_neighbours(random_hashes(100_000, seed=1), count=2_000, seed=2, max_flips=6)
    index = HammingIndex(hashes, max_distance=4)
    assert index.blocks == 3  # 21-bit blocks searched within 1 bit: few candidates per bucket
    found = sorted_pairs(*find_self_pairs(index))
    expected = sorted_pairs(*brute_force_pairs(hashes, 4))
    assert 1_000 < len(expected) < 2_000  # the planted pairs within 4 bits, and nothing by chance
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize("max_distance,blocks", [(0, 1), (2, 3), (3, 2), (5, 6), (8, 3)])
def test_every_block_count_is_exact(max_distance, blocks):
    hashes = plant_neighbours(random_hashes(3_000, seed=max_distance), count=300, seed=7, max_flips=max_distance + 2)
    index = HammingIndex(hashes, max_distance, blocks=blocks)
    expected = sorted_pairs(*brute_force_pairs(hashes, max_distance))
    assert len(expected) > 0
    np.testing.assert_array_equal(sorted_pairs(*find_self_pairs(index, chunk=700)), expected)


def test_search_of_other_hashes_reports_query_and_index_rows():
    base = random_hashes(1_000, seed=3)
    queries = np.array([base[10] ^ np.uint64(0b101), base[20], random_hashes(1, seed=4)[0]], dtype=np.uint64)
    rows, cols = HammingIndex(base, max_distance=2).search(queries)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 10), (1, 20)]


def test_streamed_chunks_hold_disjoint_first_rows():
    hashes = np.repeat(random_hashes(50, seed=5), 2)  # 50 exact pairs (2k, 2k+1)
    chunks = list(iter_self_pairs(HammingIndex(hashes, 3), chunk=16))
    assert len(chunks) == 7
    assert all(np.all((rows >= 16 * n) & (rows < 16 * (n + 1))) for n, (rows, _) in enumerate(chunks))
    assert sum(len(rows) for rows, _ in chunks) == 50


def test_block_choice_and_bad_arguments():
    assert choose_blocks(1_000, 4) == 5 and choose_blocks(17_600_000, 4) == 3 and choose_blocks(10, 0) == 1
    with pytest.raises(ValueError, match="max_distance"):
        HammingIndex(random_hashes(5, seed=0), 64)
    with pytest.raises(ValueError, match="blocks"):
        HammingIndex(random_hashes(5, seed=0), 2, blocks=4)  # 4 blocks of radius 0 would miss 3-bit pairs


def test_groups_join_chains_and_keep_the_first_row_first():
    rows, cols = np.array([5, 1, 7, 3]), np.array([7, 3, 9, 8])
    assert group_near_duplicates(10, [(rows[:2], cols[:2]), (rows[2:], cols[2:])]) == [[1, 3, 8], [5, 7, 9]]
    assert group_near_duplicates(4, []) == []
    assert group_exact_duplicates(["a", "b", "a", "c", "b", "a"]) == [[0, 2, 5], [1, 4]]
