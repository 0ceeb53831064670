"""The shard task: download the lines of one shard of a list into its archive; the unit engines schedule.

`download_shard(list_path, shard_index, settings, out)` is a plain function of its arguments: it
reads its own lines (`listfile.read_shards` seeks to them), checks its records against them
(`staleness`), fetches what is missing, appends samples as they finish and commits the shard
atomically. Running it twice, or after a kill, resumes per sample. A cluster engine can schedule it
as is on any node that sees the list and the output folder.

`run_tasks` runs several shard tasks through one worker pool, in order, with the next shard's
fetches starting while the last results and retries of the previous one are still coming in: the
local engine gives each process its whole share of shards this way, so a shard's stragglers never
leave the network idle. A shard's outcome does not depend on which shards share its pool.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mlimages.annotations import Annotation
from mlimages.download.adaptive import TROUBLE
from mlimages.download.book import ShardBook
from mlimages.download.config import DownloadConfig
from mlimages.download.fallback import open_mirror, resume_at_mirror
from mlimages.download.feed import Feed, decode_workers, fetch_one, stuck_result
from mlimages.download.fetch import Fetcher
from mlimages.download.hosts import HostBudget, HostGate
from mlimages.download.listfile import ShardLines, read_shards
from mlimages.download.outcome import Result
from mlimages.download.pool import WorkerPool
from mlimages.download.retries import RetryQueue
from mlimages.download.shards import DUPLICATE, RECOVER, SKIP, Shard
from mlimages.download.sources import make_key
from mlimages.download.staleness import check_shard
from mlimages.download.summary import Tally
from mlimages.errors import InputError


@dataclass(frozen=True)
class TaskSettings:
    """What a shard task needs besides its list, index and folder (picklable, to ship to a process or node)."""

    config: DownloadConfig
    retry_failures: bool = False
    force: bool = False


@dataclass(frozen=True)
class ShardTask:
    list_path: Path
    shard_index: int
    settings: TaskSettings
    out: Path


class NoProgress:
    """The progress sink of a task run on its own: counts nothing."""

    def add(self, status: str) -> None:
        pass

    def skip(self) -> None:
        pass


class StopLine:
    """The lowest shard that hit a bad line or a stale record: no process starts a shard after it.

    Shards before it are still done, so a run with several processes leaves the same shards
    finished as a run with one. `value` may be a `multiprocessing.Value` shared by the processes.
    """

    def __init__(self, value=None):
        self.value = value

    def stop_after(self, index: int) -> None:
        if self.value is None:
            self.value = index
        elif hasattr(self.value, "get_lock"):
            with self.value.get_lock():
                self.value.value = min(self.value.value, index)

    def should_stop(self, index: int) -> bool:
        if self.value is None:
            return False
        limit = self.value.value if hasattr(self.value, "get_lock") else self.value
        return index > limit


@dataclass
class Services:
    """What the process running tasks provides: the politeness gate, a progress sink, the stop line."""

    gate: HostGate
    progress: object = field(default_factory=NoProgress)
    stop: StopLine = field(default_factory=StopLine)


def local_services(config: DownloadConfig, progress: object | None = None) -> Services:
    """Services for tasks run in this process only: the host budget lives here."""
    budget = HostBudget(config.per_host_concurrency, config.per_host_concurrency_min, config.per_host_concurrency_max)
    gate = HostGate(config.per_host_concurrency, total=config.concurrency, budget=budget)
    return Services(gate, progress if progress is not None else NoProgress())


def download_shard(list_path: Path, shard_index: int, settings: TaskSettings, out: Path) -> Tally:
    """Download shard `shard_index` of `list_path` into `out`; returns its counts.

    Raises:
        InputError: a bad line in the shard, or the shard's records no longer match the list
            (without `settings.force`).
    """
    return run_tasks([ShardTask(list_path, shard_index, settings, out)], local_services(settings.config))


def run_tasks(tasks: list[ShardTask], services: Services) -> Tally:
    """Run shard tasks of one list, settings and folder through one worker pool; returns their counts."""
    if not tasks:
        return Tally()
    first = tasks[0]
    if any((t.list_path, t.settings, t.out) != (first.list_path, first.settings, first.out) for t in tasks):
        raise ValueError("run_tasks takes tasks of one list, settings and output folder")
    config, settings = first.settings.config, first.settings
    fetcher = Fetcher(config, services.gate)
    mirror = open_mirror(config)
    work = functools.partial(fetch_one, fetcher=fetcher, config=config, mirror=mirror)
    release = functools.partial(services.gate.release, signal=TROUBLE)
    pool = WorkerPool(work, config.concurrency + decode_workers(config), config.watchdog_s, stuck_result, release)
    book = ShardBook(first.out, config.samples_per_shard, settings.retry_failures, bool(config.mirror_metadata_csv))
    feed = Feed(pool, book, services.progress, RetryQueue(), mirror)
    try:
        shards = read_shards(first.list_path, config, [task.shard_index for task in tasks])
        run_shards(shards, feed, settings.force, first.list_path, services.stop)
        book.finish_all()
    finally:
        pool.close()
        book.close_handles()
    return book.tally


def run_shards(shards: Iterator[ShardLines], feed: Feed, force: bool, list_path: Path, stop: StopLine) -> None:
    """The main loop: check each shard against the list, then plan its lines and submit fetches.

    After a bad line or a changed shard, the fetches in flight are still stored: nothing done is lost
    (lines waiting for a retry are not recorded, so the next run fetches them). A shard after one
    where another process hit such an error is not started (`stop`).
    """
    index = -1
    try:
        for listed in shards:
            index = listed.index
            if stop.should_stop(index):
                break
            shard = feed.book.open_shard(index)
            check_shard(shard, listed, list_path, force)
            plan_lines(shard, listed.lines, feed)
    except InputError:
        stop.stop_after(index)
        feed.finish(with_retries=False)
        raise
    feed.finish(with_retries=True)


def plan_lines(shard: Shard, lines: list[tuple[int, Annotation, str]], feed: Feed) -> None:
    """Submit the lines of one shard that need fetching, storing results as they come."""
    for line, annotation, _ in lines:
        key = make_key(annotation.source)
        plan = shard.plan(line, key, annotation)
        if plan == DUPLICATE:
            feed.progress.add(DUPLICATE)  # skipped by policy, decided here without a fetch
            continue
        if plan == SKIP:
            feed.progress.skip()
            continue
        payload = Result(line, key, annotation.source, annotation.labels, status="queued")
        if plan == RECOVER and not resume_at_mirror(payload, shard.statuses[line], feed.mirror):
            shard.record(payload)  # not listed: its earlier failure stands, now asked about (no fetch)
            feed.progress.add(payload.status)
            continue
        feed.book.pending[shard.index] = feed.book.pending.get(shard.index, 0) + 1
        feed.submit(payload)
