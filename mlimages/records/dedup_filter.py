"""Apply the dedup stage's findings to a stream of training samples (build_tfrecords).

Leaked images (copies of evaluation images) are left out when `records.drop_leaked`; with
`records.merge_duplicates` every near-duplicate group is reduced to its kept image, which carries
the union of the group's labels. Nothing else changes: with nothing to exclude, the records are
byte-identical to a build without a dedup folder.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Iterator

from mlimages.dedup.outputs import Exclusions
from mlimages.records.config import RecordsConfig
from mlimages.records.image_shards import BadSample, ImageSample


class DedupFilter:
    """Drops and relabels samples by key; `counts` says how many of each happened.

    Args:
        exclusions: one split's dedup findings (`mlimages.dedup.outputs.load_exclusions`).
        config: the `records:` params (`drop_leaked`, `merge_duplicates`).
    """

    def __init__(self, exclusions: Exclusions, config: RecordsConfig):
        self.exclusions = exclusions
        self.drop_leaked = config.drop_leaked
        self.merge_duplicates = config.merge_duplicates
        self.counts: collections.Counter = collections.Counter()

    @property
    def dropped_keys(self) -> frozenset[str]:
        dropped = self.exclusions.leaked if self.drop_leaked else frozenset()
        return dropped | (self.exclusions.duplicates if self.merge_duplicates else frozenset())

    def apply(self, samples: Iterable[ImageSample | BadSample]) -> Iterator[ImageSample | BadSample]:
        """The samples to write, in the same order; `BadSample` entries pass through."""
        leaked, duplicates = self.exclusions.leaked, self.exclusions.duplicates
        for sample in samples:
            if isinstance(sample, ImageSample):
                if self.drop_leaked and sample.key in leaked:
                    self.counts["left_out_leaked"] += 1
                    continue
                if self.merge_duplicates and sample.key in duplicates:
                    self.counts["left_out_duplicates"] += 1
                    continue
                merged = self.exclusions.merged_labels.get(sample.key) if self.merge_duplicates else None
                if merged is not None:
                    self.counts["labels_merged"] += 1
                    sample = dataclasses.replace(sample, labels=merged[0], confidences=merged[1])
            yield sample

    def report(self, folder) -> dict:
        names = ("left_out_leaked", "left_out_duplicates", "labels_merged")
        return {"folder": str(folder), "drop_leaked": self.drop_leaked, "merge_duplicates": self.merge_duplicates,
                **{name: self.counts[name] for name in names}}
