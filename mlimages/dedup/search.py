"""All pairs of 64-bit hashes within Hamming distance r, without comparing every pair.

Multi-index hashing (Norouzi, Punjani and Fleet, 2012): cut the 64 bits into m blocks. If two
hashes differ in at most r bits, some block differs in at most floor(r / m) bits (pigeonhole), so
every true pair is found by looking up, for each block, the block values within floor(r / m) bits
of the query's, and then checking the full distance of those candidates only. m = r + 1 gives the
exact-match variant (radius 0); fewer, wider blocks with a small radius keep the buckets nearly
empty when there are many hashes. `choose_blocks` picks m from the expected work for uniform
hashes: probes per query times the expected bucket size, plus the probes themselves.

The index keeps, per block, the rows sorted by block value, a copy of the hashes in that order
and a bucket-offset table (2**width + 1 entries; `searchsorted` on the values for blocks wider
than 24 bits): 12 bytes per hash and block plus 8 for the hashes, no Python objects, so 17.6M
hashes in 3 blocks take about 0.8 GB. Queries run in chunks; pairs come out chunk by chunk
(streamed), so memory does not grow with the number of pairs found.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterator

import numpy as np

HASH_BITS = 64
DEFAULT_CHUNK = 1 << 16


def choose_blocks(count: int, max_distance: int) -> int:
    """The number of blocks (1 .. max_distance + 1) with the least expected work for `count` hashes."""
    def cost(blocks: int) -> float:
        bits, radius = HASH_BITS // blocks, max_distance // blocks
        probes = sum(math.comb(bits, k) for k in range(radius + 1))
        return blocks * probes * (1.0 + count / 2.0 ** bits)

    return min(range(1, max_distance + 2), key=cost)


def _block_bounds(blocks: int) -> list[tuple[int, int]]:
    """(shift, width) of each block; widths differ by at most one bit and add up to 64."""
    widths = [HASH_BITS // blocks + (1 if i < HASH_BITS % blocks else 0) for i in range(blocks)]
    bounds, shift = [], HASH_BITS
    for width in widths:
        shift -= width
        bounds.append((shift, width))
    return bounds


def _probe_masks(width: int, radius: int) -> np.ndarray:
    """Every `width`-bit mask with at most `radius` bits set, uint64."""
    masks = [0]
    for k in range(1, radius + 1):
        masks += [sum(1 << bit for bit in bits) for bits in itertools.combinations(range(width), k)]
    return np.array(masks, dtype=np.uint64)


DIRECT_TABLE_MAX_BITS = 24  # blocks this wide or less get a bucket-offset table (2**bits + 1 entries)


class _BlockTable:
    """One block's buckets: rows sorted by block value, their hashes in that order, bucket bounds.

    Keeping a copy of the hashes in bucket order makes the verification read contiguous memory
    instead of jumping around the whole hash array (the dominant cost at 17.6M hashes).
    """

    def __init__(self, hashes: np.ndarray, shift: int, width: int, radius: int):
        self.shift, self.width = shift, width
        values = block_values(hashes, shift, width)
        order = np.argsort(values, kind="stable")
        self.order = order.astype(np.int64 if len(hashes) >= 2**31 else np.int32)
        self.sorted_hashes = hashes[order]
        self.masks = _probe_masks(width, radius).astype(np.uint32)
        if width <= DIRECT_TABLE_MAX_BITS:
            self.offsets = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(np.bincount(values, minlength=1 << width), out=self.offsets[1:])
            self.sorted_values = None
        else:
            self.offsets, self.sorted_values = None, values[order]

    def bounds(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and one-past-last sorted position of each key's bucket."""
        if self.offsets is not None:
            return self.offsets[keys], self.offsets[keys.astype(np.int64) + 1]
        return (np.searchsorted(self.sorted_values, keys, side="left"),
                np.searchsorted(self.sorted_values, keys, side="right"))


def block_values(hashes: np.ndarray, shift: int, width: int) -> np.ndarray:
    """Bits shift .. shift+width-1 of each hash, as uint32."""
    return ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.uint32)


class HammingIndex:
    """An index of hashes answering "which rows are within `max_distance` bits of this hash".

    Args:
        hashes: uint64 array (n,); kept by reference (a memory-mapped array works).
        max_distance: the largest Hamming distance reported.
        blocks: number of blocks; None chooses by `choose_blocks`.
    """

    def __init__(self, hashes: np.ndarray, max_distance: int, blocks: int | None = None):
        if not 0 <= max_distance < HASH_BITS:
            raise ValueError(f"max_distance must be in 0..{HASH_BITS - 1}, got {max_distance}")
        self.hashes = np.asarray(hashes, dtype=np.uint64)
        self.max_distance = max_distance
        self.blocks = blocks or choose_blocks(len(self.hashes), max_distance)
        if not 1 <= self.blocks <= max_distance + 1:
            raise ValueError(f"blocks must be in 1..{max_distance + 1} for exact search, got {self.blocks}")
        radius = max_distance // self.blocks
        self._tables = [_BlockTable(self.hashes, shift, width, radius) for shift, width in _block_bounds(self.blocks)]

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (query row, index row) pairs within `max_distance`, each pair once, sorted.

        Args:
            queries: uint64 array (q,); keep q modest (a chunk): memory is linear in the candidates.

        Returns:
            Two int64 arrays of equal length: rows of `queries` and rows of the index.
        """
        queries = np.asarray(queries, dtype=np.uint64)
        found = [self._search_block(queries, table) for table in self._tables]
        rows = np.concatenate([f[0] for f in found])
        cols = np.concatenate([f[1] for f in found])
        size = max(1, len(self.hashes))
        codes = np.unique(rows * size + cols)  # a pair may turn up in several blocks
        return codes // size, codes % size

    def _search_block(self, queries: np.ndarray, table: _BlockTable) -> tuple[np.ndarray, np.ndarray]:
        keys = block_values(queries, table.shift, table.width)
        rows_out, cols_out = [], []
        for mask in table.masks:
            start, stop = table.bounds(keys ^ mask)
            counts = stop - start
            total = int(counts.sum())
            if total == 0:
                continue
            rows = np.repeat(np.arange(len(queries)), counts)
            # sorted positions start[r], start[r]+1, ... for each query r, without a Python loop
            positions = np.arange(total) - np.repeat(np.cumsum(counts) - counts - start, counts)
            close = np.bitwise_count(queries[rows] ^ table.sorted_hashes[positions]) <= self.max_distance
            rows_out.append(rows[close])
            cols_out.append(table.order[positions[close]].astype(np.int64))
        empty = np.empty(0, dtype=np.int64)
        return (np.concatenate(rows_out) if rows_out else empty), (np.concatenate(cols_out) if cols_out else empty)


def iter_self_pairs(index: HammingIndex, chunk: int = DEFAULT_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs (i, j), i < j, of the index's own hashes within its distance, one chunk of i at a time."""
    for begin in range(0, len(index.hashes), chunk):
        rows, cols = index.search(index.hashes[begin:begin + chunk])
        rows = rows + begin
        keep = rows < cols
        yield rows[keep], cols[keep]


def find_self_pairs(index: HammingIndex, chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of `iter_self_pairs`, concatenated (sorted by i, then j)."""
    parts = list(iter_self_pairs(index, chunk))
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def brute_force_pairs(hashes: np.ndarray, max_distance: int, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every pair i < j within `max_distance`, by comparing all pairs (quadratic)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    rows_out, cols_out = [], []
    for begin in range(0, len(hashes), chunk):
        block = hashes[begin:begin + chunk]
        later = hashes[begin + 1:]  # row r of the block is compared with hashes after it only
        close = np.bitwise_count(block[:, None] ^ later[None, :]) <= max_distance  # (chunk, n - begin - 1)
        rows, offsets = np.nonzero(close)
        cols = begin + 1 + offsets
        keep = rows + begin < cols
        rows_out.append(rows[keep] + begin)
        cols_out.append(cols[keep])
    if not rows_out:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(rows_out).astype(np.int64), np.concatenate(cols_out).astype(np.int64)
