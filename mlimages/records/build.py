"""Build one split folder of TFRecords from images: re-encode, label, shard, report.

Used by both builders (`build_ml_images` here for the downloader's shards, and
`mlimages.records.imagenet`). Images are read, checked, decoded, shrunk and re-encoded by a small
thread pool (`ordered_map`): Pillow releases the GIL while it decodes, resizes and encodes, so
threads keep every core busy without copying images between processes. Results are consumed in
input order, so the shards are byte-identical for the same inputs and params whatever the number
of workers. A sample that is not a usable image is skipped, counted by reason and named in the
report; it never stops the build.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from mlimages.dedup.outputs import load_exclusions
from mlimages.errors import InputError
from mlimages.hierarchy import load_hierarchy
from mlimages.images import ImageError
from mlimages.records.config import RecordsConfig
from mlimages.records.dedup_filter import DedupFilter
from mlimages.records.index import CLASSES_FILE, write_classes
from mlimages.records.image_shards import BadSample, ImageSample, index_shard, iter_samples, list_image_shards
from mlimages.records.ordered_map import map_ordered
from mlimages.records.schema import encode_example
from mlimages.records.transcode import transcode_sample
from mlimages.records.writer import ShardWriter, max_records_per_shard

MAX_NAMED_SKIPS = 10_000  # the report names at most this many skipped samples (all are counted)

log = logging.getLogger(__name__)




def write_split(samples: Iterable[ImageSample | BadSample], out, config: RecordsConfig, label_kind: str,
                num_classes: int, total: int, dense_labels: bool = False, mapper: Callable = map_ordered) -> dict:
    """Transcode `samples` and write them as the split folder `out`.

    Args:
        samples: images in output order; `BadSample` entries are only counted and reported.
        out: the split folder (replaced atomically).
        config: image and shard parameters.
        label_kind: ``"multi"`` or ``"single"``.
        num_classes: size of the label space.
        total: number of samples expected (progress bar and the `min_shards` cap).
        dense_labels: also store the dense label vector (legacy readers).
        mapper: runs the transcoding, `map_ordered`'s contract (results in input order); a cluster
            engine's mapper runs it on other machines (`mlimages.cluster.engines.records_mapper`).

    Returns:
        The stage report: counts, skipped samples by reason, shards, bytes, speed.
    """
    started = time.perf_counter()
    extra = {"image": {"shorter_side": config.shorter_side, "max_side": config.max_side,
                       "jpeg_quality": config.jpeg_quality}, "dense_labels": dense_labels}

    work = functools.partial(transcode_sample, config=config)  # a module-level function: cheap to ship to a worker
    skipped: list[BadSample] = []
    with ShardWriter(out, label_kind, num_classes, config.shard_bytes,
                     max_records_per_shard(total, config.min_shards), extra) as writer:
        results = mapper(work, samples, config.num_workers)
        for sample, result in tqdm(results, total=total, desc=f"records {Path(out).name}", unit="img", disable=None):
            if isinstance(result, BadSample):
                skipped.append(result)
            elif isinstance(result, ImageError):
                skipped.append(BadSample(sample.where, result.reason, str(result), sample.line, sample.source))
            else:
                writer.write(encode_example(result.data, result.height, result.width, sample.labels,
                                            sample.confidences, filename=sample.source,
                                            dense_classes=num_classes if dense_labels else None))
        index = writer.commit()
    return make_report(out, index, skipped, time.perf_counter() - started)


def make_report(out, index: dict, skipped: list[BadSample], seconds: float) -> dict:
    for bad in skipped:
        log.warning("skipped %s (%s): %s", bad.where, bad.reason, bad.detail)
    reasons = collections.Counter(bad.reason for bad in skipped)
    return {
        "out": str(out),
        "samples": index["count"] + len(skipped),
        "written": index["count"],
        "skipped": len(skipped),
        "skipped_by_reason": dict(sorted(reasons.items())),
        "skipped_samples": [asdict(bad) for bad in skipped[:MAX_NAMED_SKIPS]],
        "shards": len(index["shards"]),
        "bytes": index["bytes"],
        "seconds": round(seconds, 3),
        "images_per_s": round(index["count"] / seconds, 2) if seconds > 0 else None,
    }


def build_ml_images(images, hierarchy, out, config: RecordsConfig, dense_labels: bool = False, dedup=None,
                    mapper: Callable = map_ordered) -> dict:
    """Build a multi-label split folder from the downloader's image shards.

    Args:
        images: folder of ``NNNNN.tar`` image shards (one split).
        hierarchy: the hierarchy file the lists were made with (class count and classes.tsv).
        out: the split folder to write, e.g. ``data/tfrecords/ml-images/train``.
        config: the `records:` params.
        dense_labels: also store the dense label vector (``--legacy-dense-labels``).
        dedup: the dedup stage's folder for this split (``data/dedup/train``): leaked images and
            merged groups are applied as `config.drop_leaked` / `config.merge_duplicates` say.
        mapper: runs the transcoding (see `write_split`).

    Returns:
        The stage report (see `write_split`), with the image folder (and the dedup counts) added.
    """
    tree = load_hierarchy(hierarchy)
    num_classes = max(tree.categories) + 1
    shards = list_image_shards(images)
    if not shards:
        raise InputError("no NNNNN.tar image shards (has the download stage run?)", str(images))
    indexed = [index_shard(shard) for shard in shards]
    bad_members = [bad for _, bads in indexed for bad in bads]
    indexes = [index for index, _ in indexed]
    total = sum(len(index) for index in indexes) + len(bad_members)
    samples = iter_samples(shards, indexes, num_classes)
    dedup_filter = DedupFilter(load_exclusions(dedup), config) if dedup is not None else None
    if dedup_filter is not None:
        samples = dedup_filter.apply(samples)
        total = max(0, total - len(dedup_filter.dropped_keys))  # shard sizes follow the images kept
    samples = itertools.chain(bad_members, samples)
    report = write_split(samples, out, config, "multi", num_classes, total, dense_labels or config.dense_labels,
                         mapper)
    if dedup_filter is not None:
        report["dedup"] = dedup_filter.report(dedup)
    rows = [(c.index, c.wnid, c.name) for c in sorted(tree.categories.values(), key=lambda c: c.index)]
    write_classes(Path(out) / CLASSES_FILE, rows)  # inside the split: the stage's declared output
    return {"images": str(images), "image_shards": len(shards), **report}

