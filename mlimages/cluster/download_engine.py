"""The Ray engine of the download: one task per shard on whichever node, one bar and one report here.

`run_ray(tasks, progress, cluster)` is `engines.run_local`'s loop with another way to start a
shard task: the driver keeps at most `tasks_in_flight` attempts submitted (by default one per CPU
of the live nodes, followed as nodes come and go), holds nothing of the list but shard numbers and
never more results than the tasks in flight, and commits each finished attempt itself (`attempts.commit`), so a lost attempt that still
runs is fenced. An attempt lost with its node or worker is retried on another node, from what it
stored, up to `shard_attempts` tries; its host slots are freed (`forget_owner`). A bad line or a
stale shard stops the run as in the local engine: no shard after it is submitted, the others in
flight finish, and the error is raised.

The bar is the local engine's `Progress`, fed by the tasks' batches through an inbox actor, per
attempt (`attempt_progress`: a retried attempt's lines are taken back, so each line counts once),
with the number of nodes alive added; the counts merge into one `Tally`, so the report has the
local engine's format, its `run` block saying what ran: worker processes, nodes, attempts, retries.
With no live node that can run a task for `node_wait_s` (`node_watch`), the run stops: the shards
not done are named, the tasks still waiting are cancelled, and the attempts' folders are kept for
the rerun.
"""

from __future__ import annotations

import collections
import logging
import time

import ray

from mlimages.cluster.attempt_progress import AttemptProgress
from mlimages.cluster.attempts import attempt_folder, attempt_token, commit, remove_attempts_folder, run_started_ms
from mlimages.cluster.budget import start_budget
from mlimages.cluster.config import ClusterConfig
from mlimages.cluster.connect import connect, on_this_node
from mlimages.cluster.node_watch import NodeWatch, shard_ranges
from mlimages.cluster.shard_task import Inbox, remote_attempt
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


class RayRun:
    """The driver's state: attempts in flight, tries per shard, counts, the first input error."""

    def __init__(self, tasks: list[ShardTask], cluster: ClusterConfig, progress):
        config = tasks[0].settings.config
        self.waiting = collections.deque(tasks)
        self.cluster, self.progress = cluster, AttemptProgress(progress)
        self.in_flight: dict = {}  # ObjectRef -> (task, token, owner)
        self.tries: collections.Counter = collections.Counter()
        self.tally, self.started_ms, self.owners, self.retries = Tally(), run_started_ms(), 0, 0
        self.input_errors: list[tuple[int, str, str]] = []
        self.lost: list[str] = []
        self.peak_rss_kb, self.shown, self.committed = 0, 0.0, 0
        self.watch = NodeWatch(cluster.node_wait_s)
        self.watch.check()
        self.budget = start_budget(config.per_host_concurrency, config.per_host_concurrency_min,
                                   config.per_host_concurrency_max)
        self.inbox = ray.remote(Inbox).options(num_cpus=0, max_restarts=0, scheduling_strategy=on_this_node()).remote()

    def submit(self, task: ShardTask) -> None:
        self.owners += 1
        self.tries[task.shard_index] += 1
        token = attempt_token(self.started_ms, self.owners)
        self.progress.submitted(self.owners)
        ref = remote_attempt.remote(task, token, self.owners, self.budget, self.inbox)
        self.in_flight[ref] = (task, token, self.owners)

    def stopped_before(self, task: ShardTask) -> bool:
        return any(index < task.shard_index for index, _, _ in self.input_errors)

    @property
    def limit(self) -> int:
        """Attempts submitted at once: `tasks_in_flight`, or one per CPU of the live nodes (nodes may join later)."""
        return self.cluster.tasks_in_flight or max(1, int(self.watch.cpus))

    def fill(self) -> None:
        while self.waiting and len(self.in_flight) < self.limit:
            task = self.waiting.popleft()
            if not self.stopped_before(task):
                self.submit(task)

    def settle(self, ref) -> None:
        """Take one finished attempt: commit it, count an input error, or retry a lost one."""
        task, token, owner = self.in_flight.pop(ref)
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayTaskError as error:  # our code raised on the node: not a lost node
            ray.get(self.budget.forget_owner.remote(owner))
            self.progress.finished(owner)
            cause = getattr(error, "cause", None)
            self.lost.append(f"shard {task.shard_index}: " + (f"{type(cause).__name__}: {cause}" if cause is not None
                                                             else str(error).splitlines()[0]))
            return
        except ray.exceptions.RayError as error:
            self.retry(task, token, owner, error)
            return
        self.progress.finished(owner)
        if outcome[0] == "input":  # named as in the output folder, not in the attempt's own
            where = str(outcome[3] or "").replace(str(attempt_folder(task.out, task.shard_index, token)), str(task.out))
            self.input_errors.append((task.shard_index, outcome[2], where))
            return
        _, _, tally, peak_rss_kb, _ = outcome
        commit(task.out, task.shard_index, attempt_folder(task.out, task.shard_index, token))
        self.committed += 1
        self.tally.merge(tally)
        self.peak_rss_kb = max(self.peak_rss_kb, peak_rss_kb)

    def retry(self, task: ShardTask, token: str, owner: int, error: Exception) -> None:
        """An attempt lost with its node or worker: free its slots, take its lines off the bar, try again."""
        freed = ray.get(self.budget.forget_owner.remote(owner))
        taken = self.progress.withdraw(owner)
        log.warning("shard %d: attempt %s lost (%s; %d host slots freed, %d lines taken off the bar)",
                    task.shard_index, token, type(error).__name__, freed, taken)
        if self.tries[task.shard_index] < self.cluster.shard_attempts:
            self.retries += 1
            self.submit(task)
        else:
            self.lost.append(f"shard {task.shard_index}: {self.tries[task.shard_index]} attempts lost")

    def show(self, every_s: float = 2.0) -> None:
        for owner, message in ray.get(self.inbox.drain.remote()):
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
        not_done = [task.shard_index for task, _, _ in self.in_flight.values()]
        not_done += [task.shard_index for task in self.waiting if not self.stopped_before(task)]
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
    run = RayRun(tasks, cluster, progress)
    try:
        drive(run)
    finally:
        for actor in (run.budget, run.inbox):
            ray.kill(actor)
    log.info("ray engine: %d attempts committed on %d nodes; peak memory of a worker %.0f MB",
             run.committed, len(run.progress.nodes), run.peak_rss_kb / 1024)
    if run.input_errors:
        _, message, where = min(run.input_errors)
        raise InputError(message, where)
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
