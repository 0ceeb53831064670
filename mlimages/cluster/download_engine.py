"""The Ray engine of the download: a task per few shards on whichever node, one bar and one report here.

`run_ray(tasks, progress, cluster)` is `engines.run_local`'s loop with another way to start shard
tasks: each Ray task carries `shards_per_task` consecutive shards through one worker pool, so the
stragglers at a shard's end (a host that never answers holds its line for the deadline times the
tries) overlap the next shard's fetches, as in a local worker process; with one shard per task the
network sat idle for each shard's tail (1.5x the local engine's time on the benchmark's mix). The
driver keeps at most `tasks_in_flight` attempts submitted (by default one per CPU of the live
nodes, followed as nodes come and go), holds nothing of the list but shard numbers and never more
results than the tasks in flight, and commits each finished attempt's shards itself
(`attempts.commit`), so a lost attempt that still runs is fenced. An attempt lost with its node or
worker is retried on another node, from what it stored, up to `shard_attempts` tries; its host
slots are freed (`forget_owner`). A bad line or a stale shard stops the run as in the local
engine: no shard after it is submitted, the shards before it and the others in flight finish, and
the error is raised.

The bar is the local engine's `Progress`, fed by the tasks' batches through the coordinator's inbox, per
attempt (`attempt_progress`: a retried attempt's lines are taken back, so each line counts once),
with the number of nodes alive added; the counts merge into one `Tally`, so the report has the
local engine's format, its `run` block saying what ran: worker processes, nodes, attempts, retries.
With no live node that can run a task for `node_wait_s` (`node_watch`), the run stops: the shards
not done are named, the tasks still waiting are cancelled, and the attempts' folders are kept for
the rerun.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import shutil
import time

import ray

from mlimages.cluster.attempt_progress import AttemptProgress
from mlimages.cluster.attempts import attempt_folder, attempt_token, commit, remove_attempts_folder, run_started_ms
from mlimages.cluster.coordinator_link import start_run_coordinator
from mlimages.cluster.config import ClusterConfig
from mlimages.cluster.connect import connect
from mlimages.cluster.node_watch import NodeWatch, shard_ranges
from mlimages.cluster.shard_task import remote_attempt
from mlimages.download.engines import WorkerDied
from mlimages.download.summary import Tally
from mlimages.download.task import ShardTask
from mlimages.errors import InputError

log = logging.getLogger(__name__)
POLL_S = 0.2


class NoNodes(WorkerDied):
    """No live node could run a shard task for `node_wait_s` (`node_watch`)."""


def no_nodes_error(watch: NodeWatch, shards: list[int]) -> NoNodes:
    return NoNodes(f"{watch.describe()}: {len(shards)} shards not done ({shard_ranges(shards)}); the committed "
                   "shards are kept; add a node and rerun the same command to resume per sample")


def shard_groups(tasks: list[ShardTask], size: int) -> list[list[ShardTask]]:
    """The tasks, `size` at a time in their order: what one Ray task carries."""
    return [tasks[start:start + size] for start in range(0, len(tasks), size)]


def indexes(group: list[ShardTask]) -> list[int]:
    return [task.shard_index for task in group]


class RayRun:
    """The driver's state: attempts in flight, tries per group of shards, counts, the first input error."""

    def __init__(self, tasks: list[ShardTask], cluster: ClusterConfig, progress):
        config = tasks[0].settings.config
        self.waiting = collections.deque(shard_groups(tasks, cluster.shards_per_task))
        self.cluster, self.progress = cluster, AttemptProgress(progress)
        self.in_flight: dict = {}  # ObjectRef -> (group, token, owner)
        self.tries: collections.Counter = collections.Counter()
        self.tally, self.started_ms, self.owners, self.retries = Tally(), run_started_ms(), 0, 0
        self.input_errors: list[tuple[int, str, str]] = []
        self.lost: list[str] = []
        self.peak_rss_kb, self.shown, self.committed = 0, 0.0, 0
        self.watch = NodeWatch(cluster.node_wait_s)
        self.watch.check()
        self.coordinator, self.budget, self.coordinator_address = start_run_coordinator(
            config.per_host_concurrency, config.per_host_concurrency_min, config.per_host_concurrency_max)
        self.inbox = self.coordinator.inbox()

    def submit(self, group: list[ShardTask]) -> None:
        self.owners += 1
        self.tries[group[0].shard_index] += 1
        token = attempt_token(self.started_ms, self.owners)
        self.progress.submitted(self.owners)
        ref = remote_attempt.remote(group, token, self.owners, self.coordinator_address)
        self.in_flight[ref] = (group, token, self.owners)

    def stopped_before(self, group: list[ShardTask]) -> bool:
        return any(index < group[0].shard_index for index, _, _ in self.input_errors)

    @property
    def limit(self) -> int:
        """Attempts submitted at once: `tasks_in_flight`, or one per CPU of the live nodes (nodes may join later)."""
        return self.cluster.tasks_in_flight or max(1, int(self.watch.cpus))

    def fill(self) -> None:
        while self.waiting and len(self.in_flight) < self.limit:
            group = self.waiting.popleft()
            if not self.stopped_before(group):
                self.submit(group)

    def settle(self, ref) -> None:
        """Take one finished attempt: commit its shards, count an input error, or retry a lost one."""
        group, token, owner = self.in_flight.pop(ref)
        out, folder = group[0].out, attempt_folder(group[0].out, token)
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayTaskError as error:  # our code raised on the node: not a lost node
            self.budget.forget_owner(owner)
            self.progress.finished(owner)
            cause = getattr(error, "cause", None)
            self.lost.append(f"{shard_ranges(indexes(group))}: " + (
                f"{type(cause).__name__}: {cause}" if cause is not None else str(error).splitlines()[0]))
            return
        except ray.exceptions.RayError as error:
            self.retry(group, token, owner, error)
            return
        self.progress.finished(owner)
        if outcome[0] == "input":  # the shards before the bad one are done; its folder is kept for the rerun
            _, _, message, where, bad = outcome
            self.committed += sum(commit(out, index, folder) for index in indexes(group) if index < bad)
            self.input_errors.append((bad, message, str(where or "").replace(str(folder), str(out))))
            return
        _, _, tally, peak_rss_kb, _ = outcome
        self.committed += sum(commit(out, index, folder) for index in indexes(group))
        shutil.rmtree(folder, ignore_errors=True)
        self.tally.merge(tally)
        self.peak_rss_kb = max(self.peak_rss_kb, peak_rss_kb)

    def retry(self, group: list[ShardTask], token: str, owner: int, error: Exception) -> None:
        """An attempt lost with its node or worker: free its slots, take its lines off the bar, try again."""
        freed = self.budget.forget_owner(owner)
        taken = self.progress.withdraw(owner)
        shards, tries = shard_ranges(indexes(group)), self.tries[group[0].shard_index]
        log.warning("%s: attempt %s lost (%s; %d host slots freed, %d lines taken off the bar)",
                    shards, token, type(error).__name__, freed, taken)
        if tries < self.cluster.shard_attempts:
            self.retries += 1
            self.submit(group)
        else:
            self.lost.append(f"{shards}: {tries} attempts lost")

    def show(self, every_s: float = 2.0) -> None:
        for owner, message in self.inbox.drain():
            if message[0] == "started":
                self.progress.started(message[1], message[2])
            else:
                self.progress.apply(owner, message[1], message[2])
        now = time.monotonic()
        if now - self.shown >= every_s:
            self.shown = now
            bar = getattr(self.progress.progress, "bar", None)
            if bar is not None:
                bar.set_description(f"{self.watch.alive} nodes alive", refresh=False)

    def give_up(self) -> None:
        """No node for `node_wait_s`: cancel what waits, name the shards not done."""
        not_done = [index for group, _, _ in self.in_flight.values() for index in indexes(group)]
        not_done += [index for group in self.waiting if not self.stopped_before(group) for index in indexes(group)]
        for ref in self.in_flight:
            ray.cancel(ref, force=True)
        raise no_nodes_error(self.watch, not_done)

    def facts(self) -> dict:
        """What ran the shards, for the report's `run` block."""
        return {"engine": "ray", "processes": len(self.progress.workers), "nodes": len(self.progress.nodes),
                "attempts": self.owners, "retries": self.retries}


def run_ray(tasks: list[ShardTask], progress, cluster: ClusterConfig) -> Tally:
    """Run `tasks` as Ray tasks; returns the merged counts.

    Raises:
        InputError: a task found a bad line or a stale shard (the lowest one is named).
        WorkerDied: a shard's attempts were all lost, or its code failed on a node; what was
            committed is kept, and a rerun resumes the rest from the attempts' folders.
        NoNodes: no live node could run a task for `node_wait_s` (a `WorkerDied`).
    """
    if not tasks:
        return Tally()
    connect(cluster.address)
    given = tasks[0]  # a worker runs where its node's `ray start` ran, not in the driver's folder: paths go absolute
    tasks = [dataclasses.replace(task, list_path=task.list_path.absolute(), out=task.out.absolute()) for task in tasks]
    run = RayRun(tasks, cluster, progress)
    try:
        drive(run)
    finally:
        run.coordinator.shutdown()
    log.info("ray engine: %d shards committed on %d nodes; peak memory of a worker %.0f MB",
             run.committed, len(run.progress.nodes), run.peak_rss_kb / 1024)
    if run.input_errors:
        _, message, where = min(run.input_errors)
        raise InputError(message, where.replace(str(tasks[0].out), str(given.out)).replace(
            str(tasks[0].list_path), str(given.list_path)))
    if run.lost:
        raise WorkerDied("; ".join(run.lost) + "; rerun the same command to resume these shards")
    remove_attempts_folder(tasks[0].out)
    run.tally.engine_run = run.facts()
    return run.tally


def drive(run: RayRun) -> None:
    """Submit, settle and show until every shard is settled (or no node could run a task for too long)."""
    while run.waiting or run.in_flight:
        run.fill()
        if not run.in_flight:
            break
        ready, _ = ray.wait(list(run.in_flight), num_returns=1, timeout=POLL_S)
        for ref in ready:
            run.settle(ref)
        if run.watch.check():
            run.show(every_s=0.0)
            run.give_up()
        run.show()
    run.show(every_s=0.0)
