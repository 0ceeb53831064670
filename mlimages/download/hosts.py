"""Politeness per host: a cap on concurrent requests and a pause after 429/503; and the run's cap.

Workers take a slot before each request to a host. When a host answers 429 or 503 every worker
waits until the host's pause is over, not only the one that was told, so a throttled server sees
our request rate drop at once instead of a burst of retries. The same gate caps the requests in
flight over all hosts (`concurrency`): the run has more workers than that, so a worker decoding
what it fetched never holds a network slot.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Iterator


class HostPaused(Exception):
    """The host asked for a pause longer than the caller is willing to wait."""

    def __init__(self, seconds: float):
        super().__init__(f"host paused for {seconds:.0f} s more")
        self.seconds = seconds


class HostGate:
    """Per-host concurrency cap and back-off, and a cap over all hosts, shared by the workers of one run.

    Args:
        per_host: the most requests in flight to one host.
        total: the most requests in flight over all hosts; None for no cap beyond `per_host`.
    """

    def __init__(self, per_host: int, total: int | None = None):
        self._per_host, self._total = per_host, total
        self._condition = threading.Condition()
        self._active: dict[str, int] = {}
        self._active_total = 0
        self._not_before: dict[str, float] = {}

    @contextlib.contextmanager
    def slot(self, host: str, max_pause_s: float = math.inf) -> Iterator[None]:
        """Hold one of `host`'s slots for the duration of the block, waiting for a free one.

        Raises:
            HostPaused: the host is paused for longer than `max_pause_s`, also when the pause
                began while this caller was waiting.
        """
        with self._condition:
            while True:
                wait_s = self._not_before.get(host, 0.0) - time.monotonic()
                if wait_s > max_pause_s:
                    raise HostPaused(wait_s)
                if wait_s <= 0:
                    self._not_before.pop(host, None)
                    if self._active.get(host, 0) < self._per_host and self._has_room():
                        break
                self._condition.wait(timeout=wait_s if wait_s > 0 else 1.0)
            self._active[host] = self._active.get(host, 0) + 1
            self._active_total += 1
        try:
            yield
        finally:
            with self._condition:
                self._active[host] -= 1
                self._active_total -= 1
                if not self._active[host]:
                    del self._active[host]
                self._condition.notify_all()

    def _has_room(self) -> bool:
        return self._total is None or self._active_total < self._total

    def pause_s(self, host: str) -> float:
        """Seconds left of `host`'s current pause (0 when none)."""
        with self._condition:
            return max(0.0, self._not_before.get(host, 0.0) - time.monotonic())

    def back_off(self, host: str, seconds: float) -> None:
        """Pause all new requests to `host` for `seconds` (never shortens a longer pause)."""
        with self._condition:
            until = time.monotonic() + seconds
            self._not_before[host] = max(self._not_before.get(host, 0.0), until)
