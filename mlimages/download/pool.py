"""A bounded pool of worker threads with a per-task watchdog.

Workers take tasks from a small queue and hand back result objects; they share no counters. The
queue holds at most `2 * size` tasks, so memory does not depend on the length of the input. The
thread that submits also collects results, and checks that no task has been running longer than
`watchdog_s`: such a task is recorded through `on_stuck`, the slot it holds is released at once
(`release`), and its worker is replaced by a fresh thread, so one hung request can never hang its
host or the run. Whatever the abandoned thread returns later is discarded, never recorded.

The watchdog's clock starts when the work calls the `start` function it is given (the fetch does
once it holds its host slot): time spent waiting for a busy host is not the request's fault.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Task:
    """One input line to fetch; `started_at` and `state` are written under the pool's lock."""

    line: int
    payload: Any
    started_at: float | None = None
    state: str = field(default="queued")  # queued -> running -> started -> done | abandoned
    ticket: Any = None  # the slot held while started, released by the watchdog on abandon


class WorkerPool:
    """Runs `work(task.payload)` on `size` daemon threads.

    Args:
        work: `work(payload, start)` returns the result object; it calls `start(ticket)` when the
            watchdog's clock should start (`ticket`: the slot to release if the task is abandoned).
        size: number of worker threads.
        watchdog_s: a task running longer than this after its start is abandoned.
        on_stuck: makes the result recorded for an abandoned task.
        release: frees an abandoned task's ticket.
    """

    def __init__(self, work: Callable[[Any, Callable], Any], size: int, watchdog_s: float,
                 on_stuck: Callable[[Task], Any], release: Callable[[Any], None] = lambda ticket: None):
        self._work, self._watchdog_s, self._on_stuck, self._release = work, watchdog_s, on_stuck, release
        self._tasks: queue.Queue = queue.Queue(maxsize=2 * size)
        self._results: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._size = size
        self.in_flight: dict[int, Task] = {}
        self.replaced_workers = 0
        for _ in range(size):
            self._start_worker()

    def _start_worker(self) -> None:
        threading.Thread(target=self._run_worker, name="download-worker", daemon=True).start()

    def _run_worker(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            with self._lock:
                task.state = "running"
            result = self._work(task.payload, functools.partial(self._start_clock, task))
            with self._lock:
                if task.state == "abandoned":
                    return  # the watchdog already recorded it and started a replacement
                task.state = "done"
            self._results.put((task, result))

    def _start_clock(self, task: Task, ticket: Any = None) -> None:
        with self._lock:
            if task.state == "running" or task.state == "started":
                task.state, task.started_at, task.ticket = "started", time.monotonic(), ticket

    def submit(self, task: Task) -> list:
        """Queue `task`, waiting while the queue is full; returns results that arrived meanwhile."""
        self.in_flight[task.line] = task
        results = []
        while True:
            try:
                self._tasks.put(task, timeout=0.5)
                return results + self.poll(0)
            except queue.Full:
                results += self.poll(0)

    def poll(self, timeout_s: float) -> list:
        """Results that are ready, waiting up to `timeout_s` for the first one."""
        results = []
        try:
            item = self._results.get(timeout=timeout_s) if timeout_s > 0 else self._results.get_nowait()
            while True:
                task, result = item
                if self.in_flight.pop(task.line, None) is not None:
                    results.append(result)
                item = self._results.get_nowait()
        except queue.Empty:
            pass
        return results + self._abandon_stuck()

    def _abandon_stuck(self) -> list:
        now, stuck = time.monotonic(), []
        with self._lock:
            for task in list(self.in_flight.values()):
                if task.state == "started" and now - task.started_at > self._watchdog_s:
                    task.state = "abandoned"
                    stuck.append(task)
        for task in stuck:
            del self.in_flight[task.line]
            if task.ticket is not None:
                self._release(task.ticket)
            self.replaced_workers += 1
            log.warning(
                "line %d still running after %.0f s: recorded as watchdog, worker replaced",
                task.line,
                now - task.started_at,
            )
            self._start_worker()
        return [self._on_stuck(task) for task in stuck]

    def close(self) -> None:
        """Ask idle workers to exit; stuck daemon threads are left to die with the process."""
        for _ in range(self._size):
            try:
                self._tasks.put_nowait(None)
            except queue.Full:
                break
