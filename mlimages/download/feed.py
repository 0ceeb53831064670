"""Feed a process's worker pool: new lines, and lines whose retry is due; store what comes back.

The feeding thread (the one reading the list) submits lines and collects results; a line to retry
waits in a `RetryQueue`, not in a worker, and is submitted again when due. Workers run
`fetch_one`, which never raises: every failure ends up in the line's status.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

from mlimages.download.book import ShardBook
from mlimages.download.config import DownloadConfig
from mlimages.download.fallback import check_md5, next_leg, start_line
from mlimages.download.fetch import Fetcher
from mlimages.download.mirror import MirrorIndex
from mlimages.download.outcome import OK, FetchError, Result
from mlimages.download.pool import Task, WorkerPool
from mlimages.download.retries import RetryQueue
from mlimages.download.validate import make_stored_image

log = logging.getLogger(__name__)


@dataclass
class Feed:
    """Feeds the pool from the calling thread; stores results in the book and reports them to `progress`."""

    pool: WorkerPool
    book: ShardBook
    progress: object  # `progress.Progress` or `progress.ProgressSender`: add(status), skip()
    retries: RetryQueue
    mirror: MirrorIndex | None = None  # for lines planned `RECOVER` (`fallback.resume_at_mirror`)

    def submit(self, payload: Result) -> None:
        """Submit a line after the retries that are due, waiting while too many lines wait for one."""
        while self.retries.full:
            self._store(self.pool.poll(self.retries.wait_s(0.5)))
            self._submit_due()
        self._submit_due()
        self._store(self.pool.submit(Task(payload.line, payload)))

    def finish(self, with_retries: bool) -> None:
        """Store every result still in flight, and with `with_retries` those of the lines still to retry."""
        while self.pool.in_flight or (with_retries and self.retries):
            if with_retries:
                self._submit_due()
            self._store(self.pool.poll(self.retries.wait_s(0.5) if with_retries else 0.5))

    def _submit_due(self) -> None:
        for payload in self.retries.pop_due():
            self._store(self.pool.submit(Task(payload.line, payload)))

    def _store(self, results: list[Result]) -> None:
        for result in results:
            if result.retry_at_s is not None:
                self.retries.push(result)
                continue
            self.book.record(result)
            self.progress.add(result.status)


def fetch_one(result: Result, start: Callable, fetcher: Fetcher, config: DownloadConfig,
              mirror: MirrorIndex | None = None) -> Result:
    """Make the next attempt at one line and validate; every failure ends up in `result.status`
    (workers never raise), and a failure to retry sets `result.retry_at_s`.

    `start` is the pool's watchdog clock, started by the fetch once its host slot is held. With a
    `mirror`, a final failure may move the line to its other source at once (`fallback.next_leg`).
    """
    if result.started_s is None:
        result.started_s = time.monotonic()
        start_line(result, mirror, config.prefer_mirror)
    result.retry_at_s = None
    while True:
        try:
            attempt(result, start, fetcher, config)
            break
        except FetchError as error:
            result.status, result.error = error.reason, error.detail
            result.http_status = error.http_status if error.http_status is not None else result.http_status
            if error.attempts is not None:  # None: a validation failure, the fetch's count stands
                result.attempts += error.attempts - result.leg_attempts
                result.leg_attempts = error.attempts
            if error.retry_in_s is not None:
                result.retry_at_s = time.monotonic() + error.retry_in_s
                break
            if not next_leg(result, error, mirror):
                break
        except Exception as error:  # a bug must cost one line, not the run
            log.warning("unexpected error on line %d: %r", result.line, error, exc_info=log.isEnabledFor(logging.DEBUG))
            result.status, result.error = "unexpected", f"{type(error).__name__}: {error}"[:200]
            result.attempts = max(1, result.attempts)
            break
    result.elapsed_s = time.monotonic() - result.started_s
    return result


def attempt(result: Result, start: Callable, fetcher: Fetcher, config: DownloadConfig) -> None:
    """One attempt at the line's current source, then validation; the line is `ok` when it returns."""
    fetched = fetcher.fetch(result.url, attempt=result.leg_attempts + 1, on_start=start)
    result.attempts += fetched.attempts - result.leg_attempts
    result.leg_attempts, result.http_status = fetched.attempts, fetched.http_status
    check_md5(result, fetched.data)
    stored = make_stored_image(fetched.data, config)
    result.jpeg, result.width, result.height, result.phash = stored.jpeg, stored.width, stored.height, stored.phash
    result.status, result.error = OK, ""


def decode_workers(config: DownloadConfig) -> int:
    """Workers beyond `concurrency`: while that many decode what they fetched, the network stays busy.

    By default the cores are shared out between the worker processes (at least one each).
    """
    if config.decode_workers is not None:
        return config.decode_workers
    return max(1, (os.cpu_count() or 1) // config.process_count)


def stuck_result(task: Task) -> Result:
    """The result recorded for a line whose worker the watchdog gave up on (retried next run)."""
    payload: Result = task.payload
    started_s = payload.started_s if payload.started_s is not None else task.started_at
    return Result(payload.line, payload.key, payload.source, payload.labels, "watchdog",
                  attempts=payload.attempts + 1, elapsed_s=time.monotonic() - started_s,
                  error="no answer within watchdog_s")
