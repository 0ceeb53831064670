"""The dedup stage: hashes -> near-duplicate groups and leaks -> files, summary, contact sheet.

Evaluation sets are ML-Images val (the downloader's val shards) and the finetune validation set
(an ILSVRC-2012 layout's ``val/``). Only the training split is searched for groups; every
evaluation image is searched against the training split's index.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlimages.dedup.analysis import Group, Leak, count_exact_groups, find_groups, find_leaks, merge_labels
from mlimages.dedup.config import DedupConfig
from mlimages.dedup.hashes import HashTable, hash_image_shards, hash_imagenet_folder
from mlimages.dedup.outputs import DUPLICATE, LEAKED, LEAKED_FILE, write_leaked, write_split_folder
from mlimages.dedup.search import HammingIndex
from mlimages.dedup.sheet import write_contact_sheet

ML_IMAGES_VAL, FINETUNE_VAL = "ml_images_val", "finetune_val"

log = logging.getLogger(__name__)


def run_dedup(train_images, val_images, imagenet_root, out, sheet, config: DedupConfig) -> dict:
    """Run the whole stage and return its summary (the DVC metrics).

    Args:
        train_images, val_images: the downloader's split folders of ``NNNNN.tar`` shards.
        imagenet_root: the finetune task's ILSVRC-2012 layout; its ``val/`` is hashed.
        out: folder for ``train/``, ``val/`` and ``leaked.tsv`` (see `mlimages.dedup.outputs`).
        sheet: the contact-sheet PNG to write.
        config: the `dedup:` params.
    """
    started, out = time.perf_counter(), Path(out)
    train = hash_image_shards(train_images, config.hash_workers)
    evaluations = {ML_IMAGES_VAL: hash_image_shards(val_images, config.hash_workers),
                   FINETUNE_VAL: hash_imagenet_folder(imagenet_root, "val", config.hash_workers)}
    index = HammingIndex(train.phashes, config.max_distance)
    groups = find_groups(train, index)
    leaks = {name: find_leaks(name, table, index) for name, table in evaluations.items()}
    all_leaks = [leak for found in leaks.values() for leak in found]
    leaked_rows = {leak.train_row for leak in all_leaks}
    eval_names = {(leak.eval_set, leak.eval_row): evaluations[leak.eval_set].record_filename(leak.eval_row)
                  for leak in all_leaks}
    excluded = [(train.name(leak.train_row), LEAKED, f"{leak.eval_set} {eval_names[leak.eval_set, leak.eval_row]}"
                 f" distance {leak.distance}") for leak in all_leaks]
    records = [_group_record(number, group, train, leaked_rows) for number, group in enumerate(groups, start=1)]
    excluded += [(key, DUPLICATE, f"group {r['group']}, kept {r['keep']}") for r in records for key in r["keys"]
                 if key != r["keep"]]
    write_split_folder(out / "train", excluded, records)
    write_split_folder(out / "val", [], [])  # evaluation splits are kept whole; the clean score uses leaked.tsv
    write_leaked(out / LEAKED_FILE, [(leak.eval_set, eval_names[leak.eval_set, leak.eval_row],
                                      train.name(leak.train_row), leak.distance) for leak in all_leaks])
    write_contact_sheet(sheet, train, groups[:config.sheet_groups], evaluations, all_leaks[:config.sheet_pairs],
                        config.sheet_thumb_px, f"dedup at max_distance {config.max_distance}")
    return _summary(train, groups, evaluations, leaks, config, time.perf_counter() - started)


def _group_record(number: int, group: Group, train: HashTable, leaked_rows: set[int]) -> dict:
    """One line of groups.jsonl; the kept image is the first member that is not leaked (else the first)."""
    keep = next((row for row in group.rows if row not in leaked_rows), group.rows[0])
    labels, confidences = merge_labels([train.read_meta(row) for row in group.rows])
    return {"group": number, "exact": group.exact, "keep": train.name(keep),
            "keys": [train.name(row) for row in group.rows], "labels": labels, "confidences": confidences}


def _summary(train: HashTable, groups: list[Group], evaluations: dict[str, HashTable], leaks: dict[str, list[Leak]],
             config: DedupConfig, seconds: float) -> dict:
    in_groups = sum(len(group.rows) for group in groups)
    return {
        "max_distance": config.max_distance,
        "train_images": len(train),
        "hashes_backfilled": train.backfilled + sum(t.backfilled for t in evaluations.values()),
        "undecodable": len(train.undecodable) + sum(len(t.undecodable) for t in evaluations.values()),
        "exact_groups": count_exact_groups(train),
        "groups": len(groups),
        "images_in_groups": in_groups,
        "largest_group": max((len(group.rows) for group in groups), default=0),
        "removed_by_merging": in_groups - len(groups),
        "leaked": {name: {"eval_images": len(evaluations[name]),
                          "eval_images_with_train_copy": len({leak.eval_row for leak in found}),
                          "train_images_leaked": len({leak.train_row for leak in found})}
                   for name, found in leaks.items()},
        "seconds": round(seconds, 2),
    }
