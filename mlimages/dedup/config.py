"""`dedup:` section of params.yaml, read by the dedup stage.

The values live in params.yaml only (no defaults here), so the file and the code cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlimages.config import DEFAULT_PARAMS, check_fields


@dataclass(frozen=True)
class DedupConfig:
    """How close two images must be to count as copies, and what the contact sheet shows.

    Attributes:
        max_distance: largest Hamming distance between two 64-bit pHashes that makes them
            near-duplicates. Resized, re-encoded or slightly brightened copies are within 0-4 bits;
            unrelated photos differ in about 32. Check a new value on the contact sheet.
        hash_workers: threads decoding stored images to backfill missing hashes (Pillow releases
            the GIL while decoding); hashes do not depend on it.
        sheet_groups: largest near-duplicate groups drawn on the contact sheet.
        sheet_pairs: leaked (evaluation image, training image) pairs drawn on the contact sheet.
        sheet_thumb_px: side of each thumbnail on the sheet.
    """

    max_distance: int
    hash_workers: int
    sheet_groups: int
    sheet_pairs: int
    sheet_thumb_px: int

    def __post_init__(self) -> None:
        where = f"{DEFAULT_PARAMS}: dedup"
        checks = [
            ("max_distance", 0 <= self.max_distance <= 16, "must be in 0..16 (32 is a coin toss)"),
            ("hash_workers", self.hash_workers >= 1, "must be at least 1"),
            ("sheet_groups", self.sheet_groups >= 0, "must be at least 0"),
            ("sheet_pairs", self.sheet_pairs >= 0, "must be at least 0"),
            ("sheet_thumb_px", 16 <= self.sheet_thumb_px <= 512, "must be in 16..512"),
        ]
        check_fields(self, checks, where)
