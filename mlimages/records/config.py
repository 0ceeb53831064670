"""`records:` section of params.yaml, read by the build_tfrecords and build_imagenet stages.

The values live in params.yaml only (no defaults here), so the file and the code cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlimages.config import DEFAULT_PARAMS, check_fields


@dataclass(frozen=True)
class RecordsConfig:
    """How images are re-encoded and how records are cut into shards.

    Attributes:
        shorter_side: images are shrunk so their shorter side is at most this (never enlarged).
        max_side: and so their longer side is at most this (caps panoramas); None for no cap.
        jpeg_quality: quality of the re-encoded JPEG (1-95, Pillow's useful range).
        shard_bytes: a shard is closed once it holds this many bytes (about 128 MB for real data).
        min_shards: a shard is also closed once it holds ceil(samples / min_shards) records, so a
            small split (the demo world) still gets this many shards for parallel reading.
        num_workers: threads that decode, resize and re-encode; Pillow releases the GIL there,
            so two workers keep two cores busy. Output bytes do not depend on this.
        dense_labels: also store the dense float32 label vector (44,664 bytes per image for
            11,166 classes) for readers of the original layout.
        shuffle_seed: seed of the fixed shuffle of the ImageNet train split, whose folder
            layout is sorted by class (ML-Images lists are already shuffled by prepare_lists).
        drop_leaked: with a dedup folder, leave out training images that copy an evaluation image.
        merge_duplicates: with a dedup folder, keep one image per near-duplicate group (its first
            line) labelled with the union of the group's labels (highest confidence per class).
    """

    shorter_side: int
    max_side: int | None
    jpeg_quality: int
    shard_bytes: int
    min_shards: int
    num_workers: int
    dense_labels: bool
    shuffle_seed: int
    drop_leaked: bool
    merge_duplicates: bool

    def __post_init__(self) -> None:
        where = f"{DEFAULT_PARAMS}: records"
        checks = [
            ("shorter_side", self.shorter_side >= 1, "must be at least 1"),
            ("max_side", self.max_side is None or self.max_side >= self.shorter_side, "must be >= shorter_side"),
            ("jpeg_quality", 1 <= self.jpeg_quality <= 95, "must be in 1..95"),
            ("shard_bytes", self.shard_bytes >= 1, "must be at least 1"),
            ("min_shards", self.min_shards >= 1, "must be at least 1"),
            ("num_workers", self.num_workers >= 1, "must be at least 1"),
        ]
        check_fields(self, checks, where)
