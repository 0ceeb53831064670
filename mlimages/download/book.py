"""The shards a process has open: opened as its reader reaches them, finished when their last result is in.

Results arrive out of order (many fetches in flight), so a shard stays open until the reader has
moved past it and no fetch of its lines is outstanding; then it is committed atomically
(`Shard.finish`). The `Tally` it keeps is what this process reports for the run.
"""

from __future__ import annotations

from pathlib import Path

from mlimages.download.outcome import OK, Result
from mlimages.download.shards import Shard, shard_of_line
from mlimages.download.summary import Tally


class ShardBook:
    """The open shards: opened as the reader reaches them, finished when their last result is in."""

    def __init__(self, out: Path, samples_per_shard: int, retry_failures: bool, mirror_on: bool = False):
        self.out, self.samples_per_shard, self.retry_failures = out, samples_per_shard, retry_failures
        self.mirror_on = mirror_on
        self.open: dict[int, Shard] = {}
        self.pending: dict[int, int] = {}
        self.reading = -1
        self.tally = Tally()

    def open_shard(self, index: int) -> Shard:
        """Open the shard the reader has reached; those it left behind finish when their results are in."""
        self.reading = index
        self.open[index] = Shard(self.out, index, self.retry_failures, self.mirror_on)
        self._finish_ready()
        return self.open[index]

    def record(self, result: Result) -> None:
        index = shard_of_line(result.line, self.samples_per_shard)
        self.open[index].record(result)
        self.pending[index] -= 1
        self.tally.fetched += 1
        if result.status == OK:
            self.tally.fetched_ok += 1
            self.tally.fetched_bytes += len(result.jpeg)
        self._finish_ready()

    def _finish_ready(self) -> None:
        """Finish shards the reader has left behind and that have no result outstanding."""
        for index in sorted(self.open):
            if index < self.reading and not self.pending.get(index):
                self._finish(index)

    def _finish(self, index: int) -> None:
        shard = self.open.pop(index)
        self.pending.pop(index, None)
        shard.finish()
        self.tally.add_shard(shard.statuses)

    def finish_all(self) -> None:
        for index in sorted(self.open):
            self._finish(index)

    def close_handles(self) -> None:
        """After an error: leave partial files for the next run to recover, closed cleanly."""
        for shard in self.open.values():
            shard.close()
