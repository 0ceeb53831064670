"""prepare_lists: from raw ML-Images lists to the prepared split lists the downloader reads.

Steps, in order, for the train and the val list:

1. parse every line (`mlimages.annotations`); a bad line stops the stage or, with
   ``lists.on_bad_line: skip``, is left out and counted;
2. merge lines of the same source (union of labels, highest confidence per label);
3. close the labels under the hierarchy (an added ancestor takes the highest confidence of its
   labelled descendants);
4. drop from train every image that is also in val, so no validation image is trained on;
5. optionally keep only "trainable" classes, those with at least ``min_train_images`` training
   images (100 in the paper), and drop images left without labels;
6. shuffle train deterministically (val keeps its order) and write one `format_line` per image.

The whole list is held in memory (a dict from source to a tuple of shared (class, confidence)
pairs): about 320 bytes per image with ~12 labels after closure, so about 6 GB for the full
17.6M-line list (measured on 300k lines of the released list's format).
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mlimages.annotations import Annotation, OnBadLine, format_line, read_annotations
from mlimages.hierarchy import Hierarchy, load_hierarchy

log = logging.getLogger(__name__)

Labels = tuple[tuple[int, float], ...]  # sorted (class index, confidence) pairs
MAX_REPORTED_BAD_LINES = 50


class LabelPool:
    """Shares equal (class, confidence) pairs between images.

    Millions of images carry the same few thousand pairs; storing each pair once instead of once
    per image cuts the memory of a full list by about three quarters.
    """

    def __init__(self):
        self._pairs: dict[tuple[int, float], tuple[int, float]] = {}

    def __call__(self, labels) -> Labels:
        return tuple(self._pairs.setdefault(pair, pair) for pair in labels)


@dataclass(frozen=True)
class ListsConfig:
    """`lists:` section of params.yaml.

    The values live in params.yaml only (no defaults here), so the file and the code cannot disagree.

    Attributes:
        on_bad_line: ``error`` stops at the first bad line; ``skip`` leaves it out and counts it.
        seed: seed of the training-list shuffle.
        shuffle: shuffle the training list (the val list always keeps its order).
        min_train_images: keep only classes with at least this many training images; 0 keeps all.
    """

    on_bad_line: OnBadLine
    seed: int
    shuffle: bool
    min_train_images: int


def read_split(
    path: str | Path, hierarchy: Hierarchy, on_bad_line: OnBadLine, bad_lines: list[str], pool: LabelPool
) -> tuple[dict[str, Labels], dict]:
    """Read one list, merging lines of the same source.

    Args:
        path: the raw list.
        hierarchy: tells which class indices exist.
        on_bad_line: ``error`` or ``skip``.
        bad_lines: messages of skipped lines are appended here.
        pool: shares label pairs between images.

    Returns:
        ``(entries, counts)``: source -> labels in first-seen order, and the counts
        ``lines_read``, ``bad_lines``, ``duplicates_merged``.
    """
    entries: dict[str, Labels] = {}
    good = duplicates = 0
    before = len(bad_lines)
    for annotation in read_annotations(path, hierarchy.__contains__, on_bad_line, bad_lines):
        good += 1
        known = entries.get(annotation.source)
        if known is not None:
            duplicates += 1
            annotation = Annotation(annotation.source, merge_labels(known, annotation.labels))
        entries[annotation.source] = pool(annotation.labels)
    bad = len(bad_lines) - before
    return entries, {"lines_read": good + bad, "bad_lines": bad, "duplicates_merged": duplicates}


def merge_labels(first: Labels, second: Labels) -> Labels:
    """Union of two label sets, keeping the highest confidence of a label listed twice."""
    merged = dict(first)
    for index, confidence in second:
        merged[index] = max(confidence, merged.get(index, 0.0))
    return tuple(sorted(merged.items()))


def close_entries(entries: dict[str, Labels], hierarchy: Hierarchy, pool: LabelPool) -> int:
    """Close every entry's labels under the hierarchy, in place; return the number of labels added."""
    added = 0
    for source, labels in entries.items():
        closed = hierarchy.close(dict(labels))
        added += len(closed) - len(labels)
        entries[source] = pool(sorted(closed.items()))
    return added


def remove_overlap(train: dict[str, Labels], val: dict[str, Labels]) -> int:
    """Drop from `train` every source that is also in `val`; return how many were dropped."""
    overlap = [source for source in val if source in train]
    for source in overlap:
        del train[source]
    return len(overlap)


def count_images_per_class(entries: dict[str, Labels]) -> Counter:
    return Counter(index for labels in entries.values() for index, _ in labels)


def keep_classes(entries: dict[str, Labels], keep: set[int]) -> int:
    """Remove labels outside `keep`, in place; drop images left without labels and return their number."""
    emptied = []
    for source, labels in entries.items():
        kept = tuple(label for label in labels if label[0] in keep)
        if kept:
            entries[source] = kept
        else:
            emptied.append(source)
    for source in emptied:
        del entries[source]
    return len(emptied)


def write_list(path: Path, entries: dict[str, Labels], order: list[str]) -> None:
    """Write one `format_line` per source in `order`, atomically (temporary name, then rename)."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for source in order:
            handle.write(format_line(Annotation(source, entries[source])) + "\n")
    os.replace(temporary, path)


def prepare_lists(
    hierarchy_path: str | Path,
    train_path: str | Path,
    val_path: str | Path,
    out_dir: str | Path,
    config: ListsConfig,
) -> dict:
    """Run all the steps of the module docstring and write ``OUT/train.tsv`` and ``OUT/val.tsv``.

    Returns:
        The report: per split the counts of lines, bad lines, duplicates merged, labels added by
        closure, images dropped, images written; the class filter; the first bad-line messages.
    """
    hierarchy = load_hierarchy(hierarchy_path)
    bad_lines: list[str] = []
    splits, report, pool = {}, {}, LabelPool()
    for split, path in (("train", train_path), ("val", val_path)):
        splits[split], report[split] = read_split(path, hierarchy, config.on_bad_line, bad_lines, pool)
        report[split]["labels_added_by_closure"] = close_entries(splits[split], hierarchy, pool)
    report["train"]["dropped_also_in_val"] = remove_overlap(splits["train"], splits["val"])
    report["classes"] = filter_classes(splits, config.min_train_images, len(hierarchy))
    for split in ("train", "val"):
        report[split]["dropped_without_labels"] = report["classes"].pop(f"{split}_images_dropped")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, entries in splits.items():
        order = list(entries)
        if split == "train" and config.shuffle:
            random.Random(config.seed).shuffle(order)
        write_list(out_dir / f"{split}.tsv", entries, order)
        report[split]["images_written"] = len(order)
    report["bad_line_messages"] = bad_lines[:MAX_REPORTED_BAD_LINES]
    log.info("prepared lists: train %s, val %s", report["train"], report["val"])
    return report


def filter_classes(splits: dict[str, dict[str, Labels]], min_train_images: int, num_classes: int) -> dict:
    """Apply the trainable-class filter to both splits; return its part of the report."""
    train_counts = count_images_per_class(splits["train"])
    labelled = set(train_counts) | set(count_images_per_class(splits["val"]))
    keep = {index for index, count in train_counts.items() if count >= min_train_images}
    dropped = {split: 0 for split in splits}
    if min_train_images > 0:
        dropped = {split: keep_classes(entries, keep) for split, entries in splits.items()}
    else:
        keep = labelled
    return {
        "in_hierarchy": num_classes,
        "labelled": len(labelled),
        "min_train_images": min_train_images,
        "kept": len(keep),
        "dropped": len(labelled - keep),
        **{f"{split}_images_dropped": count for split, count in dropped.items()},
    }
