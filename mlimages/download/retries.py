"""Lines waiting out their back-off before the next attempt.

A worker that sleeps through a back-off (1 s, 2 s, a server's `Retry-After`) is a request that is
not in flight: a host answering 503 would slow down every other host of the run. So a retryable
failure hands its line back with the time it is due, and the thread that feeds the pool submits
it again once that time has come; meanwhile its worker fetches other lines.
"""

from __future__ import annotations

import heapq
import time

from mlimages.download.outcome import Result

MAX_WAITING = 10_000  # lines; past this the reader stops until some are due, so memory stays bounded


class RetryQueue:
    """Results of lines that will be tried again, earliest due first."""

    def __init__(self):
        self._heap: list[tuple[float, int, Result]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, result: Result) -> None:
        heapq.heappush(self._heap, (result.retry_at_s, result.line, result))

    def pop_due(self) -> list[Result]:
        """The lines whose time has come, earliest first."""
        now, due = time.monotonic(), []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        return due

    def wait_s(self, longest_s: float) -> float:
        """Seconds until the next line is due, at most `longest_s` (and `longest_s` when none waits)."""
        if not self._heap:
            return longest_s
        return min(longest_s, max(0.0, self._heap[0][0] - time.monotonic()))

    @property
    def full(self) -> bool:
        return len(self._heap) >= MAX_WAITING
