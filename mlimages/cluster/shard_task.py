"""One attempt of a Ray task on a node: a few shards through the unchanged shard code, fenced, with the
cluster's budget.

The attempt runs `task.run_tasks` over the task's consecutive shards in its own folder
(`attempts.seed_attempt`) through one worker pool, so a shard's stragglers overlap the next
shard's fetches, as in a local worker process. Its `HostGate` takes host slots from the run's
coordinator on the driver's machine (`coordinator_link`) and is closed when the attempt ends, and
its progress sink posts batches to the coordinator's inbox, after a first message saying where the
attempt runs (node, process). It returns what the driver needs to commit and report; a bad line or
a stale shard comes back as a value (`("input", token, message, where, shard)`), not as an
exception, so the driver can tell it from a lost node.
"""

from __future__ import annotations

import dataclasses
import os
import resource

import ray

from mlimages.cluster.attempts import seed_attempt
from mlimages.cluster.coordinator_link import InboxQueue, RemoteBudget, reach
from mlimages.cluster.connect import WORKER_ENV
from mlimages.download.coordinator import CoordinatorAddress
from mlimages.download.engines import limit_malloc_arenas
from mlimages.download.hosts import HostGate
from mlimages.download.progress import ProgressSender
from mlimages.download.task import Services, ShardTask, StopLine, run_tasks
from mlimages.errors import InputError


def run_attempt(tasks: list[ShardTask], token: str, owner: int, coordinator: CoordinatorAddress) -> tuple:
    """Run one attempt of `tasks` (consecutive shards of one list) on this node.

    Returns:
        ``("done", token, tally, peak_rss_kb, node_id)``, or ``("input", token, message, where, shard)``
        where `shard` is the one that hit the bad line or stale record (the shards before it are done).
    """
    limit_malloc_arenas()
    node = ray.get_runtime_context().get_node_id()
    link = reach(coordinator.connect)
    queue = InboxQueue(reach(link.inbox), owner)
    queue.put(("started", node, os.getpid()))  # known to the driver before any work
    folder = seed_attempt(tasks[0].out, [task.shard_index for task in tasks], token)
    config = tasks[0].settings.config
    gate = HostGate(config.per_host_concurrency, total=config.concurrency,
                    budget=RemoteBudget(reach(link.budget), owner), batch_releases=True)
    sender, stop = ProgressSender(queue), StopLine()
    try:
        tally = run_tasks([dataclasses.replace(task, out=folder) for task in tasks], Services(gate, sender, stop))
    except InputError as error:
        sender.flush()
        return ("input", token, error.message, error.where, tasks[0].shard_index if stop.value is None else stop.value)
    finally:
        gate.close()  # the worker process runs more attempts: leave no thread behind
    sender.flush()
    return ("done", token, tally, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, node)


remote_attempt = ray.remote(num_cpus=1, max_retries=0, runtime_env=WORKER_ENV)(run_attempt)
