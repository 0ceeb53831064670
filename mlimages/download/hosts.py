"""Politeness per host: an adaptive cap on concurrent requests and a pause after 429/503; and the run's cap.

`HostBudget` is the one per-host state of a run: each host's cap (`adaptive.AdaptiveCap`), its pause,
and the tickets of the requests holding its slots. With several worker processes it lives in the
coordinator process (`coordinator`) and every process asks it, so a host's cap and pause hold for
the whole run, not per process. A slot is a ticket that can be released by anyone, once: the
watchdog frees the slot of a request it abandons at once, and the abandoned thread's own release,
if it ever comes, is a no-op. When a host answers 429 or 503 every worker waits until the host's
pause is over, not only the one that was told, so a throttled server sees our request rate drop
at once instead of a burst of retries.

`HostGate` is what a process's workers use: the budget plus the process's cap over all hosts
(`concurrency`); the process has more workers than that, so a worker decoding what it fetched
never holds a network slot.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from mlimages.download.adaptive import CLEAN, CONGESTED, NEUTRAL, SLOW, AdaptiveCap


REFUSING_ANSWERS = 5  # a host whose last answers were all 429/503 is refusing this run


class HostPaused(Exception):
    """The host asked for a pause longer than the caller is willing to wait.

    `refusing`: its last `REFUSING_ANSWERS` answers were all 429/503, not one URL's trouble.
    """

    def __init__(self, seconds: float, refusing: bool = False):
        super().__init__(f"host paused for {seconds:.0f} s more")
        self.seconds, self.refusing = seconds, refusing


class HostBudget:
    """Per-host caps, pauses and slot tickets, shared by every worker of a run (thread-safe).

    Args:
        start, floor, ceiling: a new host's cap, and the range its cap adapts in (equal: fixed).
    """

    def __init__(self, start: int, floor: int, ceiling: int):
        self._start, self._floor, self._ceiling = start, floor, ceiling
        self._lock = threading.Lock()
        self._waiters: dict[str, threading.Condition] = {}
        self._caps: dict[str, AdaptiveCap] = {}
        self._active: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._refusals: dict[str, int] = {}  # 429/503 answers since the host's last clean one
        self._tickets: dict[int, tuple[str, int]] = {}  # ticket -> (host, owner)
        self._dead: set[int] = set()
        self._ids = itertools.count(1)

    def acquire(self, host: str, max_pause_s: float = math.inf, owner: int = 0) -> tuple[int | None, float, bool]:
        """Wait for a slot of `host`; returns (ticket, 0, False), or (None, seconds, refusing) when paused
        longer than `max_pause_s` (`refusing`: see `HostPaused`)."""
        with self._lock:
            waiters = self._waiters.setdefault(host, threading.Condition(self._lock))
            cap = self._caps.setdefault(host, AdaptiveCap(float(self._start), self._floor, self._ceiling))
            while True:
                now = time.monotonic()
                wait_s = self._not_before.get(host, 0.0) - now
                if wait_s > max_pause_s or owner in self._dead:
                    return None, max(wait_s, 0.0), self._refusals.get(host, 0) >= REFUSING_ANSWERS
                if wait_s <= 0 and self._active.get(host, 0) < cap.slots:
                    break
                waiters.wait(timeout=wait_s if wait_s > 0 else 1.0)
            self._active[host] = self._active.get(host, 0) + 1
            ticket = next(self._ids)
            self._tickets[ticket] = (host, owner)
            return ticket, 0.0, False

    def release(self, ticket: int, signal: str = NEUTRAL) -> None:
        """Free a slot and let its answer adapt the host's cap; a second release of a ticket is a no-op."""
        with self._lock:
            entry = self._tickets.pop(ticket, None)
            if entry is None:
                return
            host = entry[0]
            self._active[host] -= 1
            self._caps[host].on_answer(signal, self._active[host])
            if signal == CONGESTED:
                self._refusals[host] = self._refusals.get(host, 0) + 1
            elif signal in (CLEAN, SLOW):
                self._refusals.pop(host, None)
            self._waiters[host].notify_all()

    def release_many(self, releases: list[tuple[int, str]]) -> None:
        """`release` for each (ticket, signal): one call for a batch, when the budget is in another process."""
        for ticket, signal in releases:
            self.release(ticket, signal)

    def forget_owner(self, owner: int) -> int:
        """Free every slot held by `owner` (a worker process that died) and refuse it new ones; returns the count."""
        with self._lock:
            self._dead.add(owner)
            held = [ticket for ticket, (_, holder) in self._tickets.items() if holder == owner]
        for ticket in held:
            self.release(ticket)
        return len(held)

    def back_off(self, host: str, seconds: float) -> None:
        """Pause all new requests to `host` for `seconds` (never shortens a longer pause)."""
        with self._lock:
            until = time.monotonic() + seconds
            self._not_before[host] = max(self._not_before.get(host, 0.0), until)

    def pause_s(self, host: str) -> float:
        """Seconds left of `host`'s current pause (0 when none)."""
        with self._lock:
            return max(0.0, self._not_before.get(host, 0.0) - time.monotonic())

    def cap(self, host: str) -> int:
        """The slots `host` may use now."""
        with self._lock:
            cap = self._caps.get(host)
            return cap.slots if cap is not None else self._start


@dataclass(eq=False)
class Ticket:
    """A held slot: one of its host's, and one of the process's."""

    host: str
    number: int
    released: bool = False


class BatchedReleases:
    """Host slots given back to a budget in another process from a thread of their own, in batches.

    With the budget behind a round trip (the coordinator, the cluster's actor), a fetch worker need
    not wait for it to give a slot back: the slot is held a few milliseconds longer, never shorter,
    and one call carries every release queued meanwhile. `close` sends what is queued and ends the
    thread: a process that runs many gates one after the other (a Ray worker, an attempt after
    another) would otherwise keep a thread, and what it holds, per gate.
    """

    def __init__(self, release_many):
        self._release_many = release_many
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._send, name="slot-releases", daemon=True)
        self._thread.start()

    def put(self, ticket: int, signal: str) -> None:
        self._queue.put((ticket, signal))

    def _send(self) -> None:
        closing = False
        while not closing:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            closing = None in batch
            batch = [release for release in batch if release is not None]
            if batch:
                self._release_many(batch)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


class HostGate:
    """The slots a process's workers take: a host's (from the run's `HostBudget`) and the process's.

    Args:
        per_host: the most requests in flight to one host (fixed) when no `budget` is given.
        total: the most requests in flight from this process over all hosts; None for no cap.
        budget: the run's budget (shared across processes through the coordinator).
        batch_releases: give host slots back in batches (`BatchedReleases`), for a budget in
            another process; call `close` when done.
    """

    def __init__(self, per_host: int, total: int | None = None, budget: HostBudget | None = None,
                 batch_releases: bool = False):
        self.budget = budget if budget is not None else HostBudget(per_host, per_host, per_host)
        self._total = total
        self._condition = threading.Condition()
        self._active_total = 0
        self._owner = os.getpid()
        self._releases = BatchedReleases(self.budget.release_many) if batch_releases else None

    def acquire(self, host: str, max_pause_s: float = math.inf) -> Ticket:
        """Take a slot of `host`, then one of the process's cap.

        Raises:
            HostPaused: the host is paused for longer than `max_pause_s`, also when the pause
                began while this caller was waiting.
        """
        number, paused_s, refusing = self.budget.acquire(host, max_pause_s, self._owner)
        if number is None:
            raise HostPaused(paused_s, refusing)
        with self._condition:
            while self._total is not None and self._active_total >= self._total:
                self._condition.wait()
            self._active_total += 1
        return Ticket(host, number)

    def release(self, ticket: Ticket, signal: str = NEUTRAL) -> None:
        """Give both slots back (once: later calls for the same ticket do nothing)."""
        with self._condition:
            if ticket.released:
                return
            ticket.released = True
            self._active_total -= 1
            self._condition.notify()
        if self._releases is not None:
            self._releases.put(ticket.number, signal)
        else:
            self.budget.release(ticket.number, signal)

    def close(self) -> None:
        """Give back the slots still queued (with `batch_releases`)."""
        if self._releases is not None:
            self._releases.close()

    @contextlib.contextmanager
    def slot(self, host: str, max_pause_s: float = math.inf) -> Iterator[Ticket]:
        """Hold a slot of `host` for the duration of the block."""
        ticket = self.acquire(host, max_pause_s)
        try:
            yield ticket
        finally:
            self.release(ticket)

    def back_off(self, host: str, seconds: float) -> None:
        self.budget.back_off(host, seconds)

    def pause_s(self, host: str) -> float:
        return self.budget.pause_s(host)
