"""The driver's progress bar fed per attempt, so that a retried shard's lines are counted once.

A retry starts from what its lost attempt stored and walks the shard's lines again: those the lost
attempt stored come back as "done earlier", the ones it had in flight are fetched again. Fed
straight to the bar, both would be counted twice. So every batch names its attempt, and the
driver keeps, per attempt in flight, what it added to the bar; when an attempt is retried, its
sums are taken off the bar (`Progress.withdraw`) and whatever it still sends is dropped (a lost
attempt may still be running). The bar then counts each line once, as the report does; lines the
lost attempt stored show as done earlier, since the retry cannot tell them from an earlier run's.

Also the driver's record of which node and worker process ran each attempt, for the report.
"""

from __future__ import annotations

import collections

from mlimages.download.progress import apply_progress


class AttemptProgress:
    """`Progress` fed by attempts; `withdraw` takes back what a retried attempt counted."""

    def __init__(self, progress):
        self.progress = progress
        self.counted: dict[int, list] = {}  # attempt in flight -> [Counter of statuses, lines skipped]
        self.dropped: set[int] = set()
        self.workers: set[tuple[str, int]] = set()  # (node id, process id) of every attempt started
        self.nodes: set[str] = set()

    def submitted(self, owner: int) -> None:
        self.counted[owner] = [collections.Counter(), 0]

    def started(self, node: str, pid: int) -> None:
        self.nodes.add(node)
        self.workers.add((node, pid))

    def apply(self, owner: int, statuses: list[str], skipped: int) -> None:
        """A batch of attempt `owner`: to the bar, unless the attempt was withdrawn."""
        if owner in self.dropped:
            return
        sums = self.counted.get(owner)
        if sums is not None:
            sums[0].update(statuses)
            sums[1] += skipped
        apply_progress(self.progress, statuses, skipped)

    def finished(self, owner: int) -> None:
        """The attempt was committed (or stopped the run): its lines stay counted."""
        self.counted.pop(owner, None)

    def withdraw(self, owner: int) -> int:
        """Take attempt `owner`'s lines off the bar before its retry; returns how many."""
        self.dropped.add(owner)
        statuses, skipped = self.counted.pop(owner, (collections.Counter(), 0))
        self.progress.withdraw(statuses, skipped)
        return sum(statuses.values()) + skipped
