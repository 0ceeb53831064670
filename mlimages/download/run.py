"""Run a download: stream the list, fetch on a bounded pool, write shards, report.

The calling thread reads the list one shard's worth of lines at a time, checks the shard's records
against them (`staleness`), decides per line (fetch, or skip because it is done), feeds a bounded
worker pool and writes finished results into their shard. The pool has `decode_workers` (one per
CPU core by default) more workers than `concurrency`, the cap on requests in flight, so workers
decoding what they fetched do not leave the network idle. A line to retry waits in a
`RetryQueue`, not in a worker, and is submitted again when due. Memory holds the open shards'
status records, one shard's lines, a body per worker, at most two queued tasks per worker and at
most `retries.MAX_WAITING` lines waiting for a retry, whatever the list length.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm.contrib.logging import logging_redirect_tqdm

from mlimages.annotations import Annotation
from mlimages.download.config import DownloadConfig
from mlimages.download.fetch import Fetcher
from mlimages.download.fingerprint import prepare_output
from mlimages.download.hosts import HostGate
from mlimages.download.listfile import ShardLines, count_lines, count_wanted_lines, read_shard_lines
from mlimages.download.outcome import OK, FetchError, Result
from mlimages.download.pool import Task, WorkerPool
from mlimages.download.progress import Progress
from mlimages.download.retries import RetryQueue
from mlimages.download.shards import FETCH, Shard, shard_of_line
from mlimages.download.sources import make_key
from mlimages.download.staleness import check_shard, remove_shards_past_end
from mlimages.download.summary import Tally, build_report, log_summary, write_report
from mlimages.download.validate import make_stored_image
from mlimages.errors import InputError

log = logging.getLogger(__name__)


def download(
    list_path: Path,
    out: Path,
    report_path: Path,
    config: DownloadConfig,
    shard_index: int = 0,
    num_shards: int = 1,
    retry_failures: bool = False,
    force: bool = False,
) -> dict:
    """Download the images of a list into shards of `out`; returns the report (also written).

    Args:
        list_path: the prepared list (`source<TAB>class:confidence ...` per line).
        out: the shard folder, e.g. ``data/images/train``.
        report_path: where the JSON metrics go.
        config: the `download:` params.
        shard_index, num_shards: this worker's part of the shards (shard % num_shards == shard_index).
        retry_failures: also retry permanent failures of earlier runs.
        force: discard what is stale instead of stopping: every shard when the settings changed,
            else only the shards the list no longer matches (see `staleness`).
    """
    if not 0 <= shard_index < num_shards:
        raise InputError(f"--shard-index must be in [0, {num_shards}), got {shard_index}", "command line")
    line_count = count_lines(list_path)
    total = count_wanted_lines(line_count, config.samples_per_shard, shard_index, num_shards)
    prepare_output(out, config, force)
    remove_shards_past_end(out, list_path, line_count, config.samples_per_shard, shard_index, num_shards, force)
    fetcher = Fetcher(config, HostGate(config.per_host_concurrency, total=config.concurrency))
    work = functools.partial(fetch_one, fetcher=fetcher, config=config)
    pool = WorkerPool(work, config.concurrency + decode_workers(config), config.watchdog_s, stuck_result)
    book = ShardBook(out, config.samples_per_shard, retry_failures)
    feed = Feed(pool, book, Progress(total, config.failure_window, config.failure_warning_rate), RetryQueue())
    start = time.monotonic()
    try:
        with logging_redirect_tqdm():
            shards = read_shard_lines(list_path, config, shard_index, num_shards)
            run_shards(shards, feed, force=force, list_path=list_path)
            book.finish_all()
    finally:
        pool.close()
        feed.progress.close()
        book.close_handles()
    report = build_report(book.tally, time.monotonic() - start, shard_index, num_shards)
    write_report(report, report_path)
    log_summary(report, out)
    return report


def run_shards(shards: Iterator[ShardLines], feed: "Feed", force: bool, list_path: Path) -> None:
    """The main loop: check each shard against the list, then plan its lines and submit fetches.

    After a bad line or a changed shard, the fetches in flight are still stored: nothing done is lost
    (lines waiting for a retry are not recorded, so the next run fetches them).
    """
    try:
        for listed in shards:
            shard = feed.book.open_shard(listed.index)
            check_shard(shard, listed, list_path, force)
            plan_lines(shard, listed.lines, feed)
    except InputError:
        feed.finish(with_retries=False)
        raise
    feed.finish(with_retries=True)


def plan_lines(shard: Shard, lines: list[tuple[int, Annotation, str]], feed: "Feed") -> None:
    """Submit the lines of one shard that need fetching, storing results as they come."""
    for line, annotation, _ in lines:
        key = make_key(annotation.source)
        if shard.plan(line, key, annotation) != FETCH:
            feed.progress.skip()
            continue
        feed.book.pending[shard.index] = feed.book.pending.get(shard.index, 0) + 1
        feed.submit(Result(line, key, annotation.source, annotation.labels, status="queued"))


@dataclass
class Feed:
    """Feeds the pool from the calling thread: new lines, and lines whose retry is due; stores results."""

    pool: WorkerPool
    book: "ShardBook"
    progress: Progress
    retries: RetryQueue

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


def fetch_one(result: Result, fetcher: Fetcher, config: DownloadConfig) -> Result:
    """Make the next attempt at one line and validate; every failure ends up in `result.status`
    (workers never raise), and a failure to retry sets `result.retry_at_s`."""
    if result.started_s is None:
        result.started_s = time.monotonic()
    result.retry_at_s = None
    try:
        fetched = fetcher.fetch(result.source, attempt=result.attempts + 1)
        result.attempts, result.http_status = fetched.attempts, fetched.http_status
        stored = make_stored_image(fetched.data, config)
        result.jpeg, result.width, result.height = stored.jpeg, stored.width, stored.height
        result.status = OK
    except FetchError as error:
        result.status, result.error = error.reason, error.detail
        result.http_status = error.http_status if error.http_status is not None else result.http_status
        result.attempts = error.attempts if error.attempts is not None else result.attempts  # validation: the fetch's
        if error.retry_in_s is not None:
            result.retry_at_s = time.monotonic() + error.retry_in_s
    except Exception as error:  # a bug must cost one line, not the run
        log.warning("unexpected error on line %d: %r", result.line, error, exc_info=log.isEnabledFor(logging.DEBUG))
        result.status, result.error = "unexpected", f"{type(error).__name__}: {error}"[:200]
        result.attempts = max(1, result.attempts)
    result.elapsed_s = time.monotonic() - result.started_s
    return result


def decode_workers(config: DownloadConfig) -> int:
    """Workers beyond `concurrency`: while that many decode what they fetched, the network stays busy."""
    return config.decode_workers if config.decode_workers is not None else os.cpu_count() or 1


def stuck_result(task: Task) -> Result:
    """The result recorded for a line whose worker the watchdog gave up on (retried next run)."""
    payload: Result = task.payload
    started_s = payload.started_s if payload.started_s is not None else task.started_at
    return Result(payload.line, payload.key, payload.source, payload.labels, "watchdog",
                  attempts=payload.attempts + 1, elapsed_s=time.monotonic() - started_s,
                  error="no answer within watchdog_s")


class ShardBook:
    """The open shards: opened as the reader reaches them, finished when their last result is in."""

    def __init__(self, out: Path, samples_per_shard: int, retry_failures: bool):
        self.out, self.samples_per_shard, self.retry_failures = out, samples_per_shard, retry_failures
        self.open: dict[int, Shard] = {}
        self.pending: dict[int, int] = {}
        self.reading = -1
        self.tally = Tally()

    def open_shard(self, index: int) -> Shard:
        """Open the shard the reader has reached; those it left behind finish when their results are in."""
        self.reading = index
        self.open[index] = Shard(self.out, index, self.retry_failures)
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
