"""`demo:` section of params.yaml: seed and sizes of the embedded demo world.

The values live in params.yaml only (no defaults here), so the file and the code cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlimages.config import DEFAULT_PARAMS, check_fields


@dataclass(frozen=True)
class DemoConfig:
    """Seed and sizes of the demo world; every image is a pure function of these and its index.

    Attributes:
        seed: changes every image and label.
        image_size: side of the square images in pixels.
        train_images, val_images: multi-label pretraining images per split.
        min_objects, max_objects: objects drawn on each pretraining image.
        ancestor_fraction: share of list lines that already carry the ancestors of their labels
            (the real lists are closed; the rest are left for the closure of prepare_lists).
        duplicate_fraction: share of images listed twice with parts of their labels (merged again
            by prepare_lists, as duplicate URLs in the real lists are).
        finetune_train_per_class, finetune_val_per_class: single-label finetune images per class.
        jpeg_quality: quality of the written JPEG files.
    """

    seed: int
    image_size: int
    train_images: int
    val_images: int
    min_objects: int
    max_objects: int
    ancestor_fraction: float
    duplicate_fraction: float
    finetune_train_per_class: int
    finetune_val_per_class: int
    jpeg_quality: int

    def __post_init__(self) -> None:
        checks = [
            ("image_size", 32 <= self.image_size <= 512, "must be in [32, 512]"),
            ("train_images", self.train_images >= 1, "must be at least 1"),
            ("val_images", self.val_images >= 1, "must be at least 1"),
            ("min_objects", 1 <= self.min_objects <= self.max_objects, "must be in [1, max_objects]"),
            ("max_objects", self.max_objects <= 8, "must be at most 8"),
            ("ancestor_fraction", 0.0 <= self.ancestor_fraction <= 1.0, "must be in [0, 1]"),
            ("duplicate_fraction", 0.0 <= self.duplicate_fraction <= 1.0, "must be in [0, 1]"),
            ("finetune_train_per_class", self.finetune_train_per_class >= 1, "must be at least 1"),
            ("finetune_val_per_class", self.finetune_val_per_class >= 1, "must be at least 1"),
            ("jpeg_quality", 1 <= self.jpeg_quality <= 100, "must be in [1, 100]"),
        ]
        check_fields(self, checks, f"{DEFAULT_PARAMS}: demo")
