"""One attempt of one shard task on a Ray node: the unchanged shard code, fenced, with the cluster's budget.

The attempt runs `task.run_tasks` on its own folder (`attempts.seed_attempt`), with a `HostGate`
whose host budget is the cluster's actor (`budget.RemoteBudget`, closed when the attempt ends) and
a progress sink that posts batches to the driver's inbox actor, after a first message saying where
the attempt runs (node, process). It returns what the driver needs to commit and report; a bad line or a stale shard
comes back as a value (`("input", message, where)`), not as an exception, so the driver can tell
it from a lost node.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import ray

from mlimages.cluster.attempts import seed_attempt
from mlimages.cluster.budget import RemoteBudget
from mlimages.cluster.connect import WORKER_ENV
from mlimages.download.engines import limit_malloc_arenas
from mlimages.download.hosts import HostGate
from mlimages.download.progress import ProgressSender
from mlimages.download.task import Services, ShardTask, run_tasks
from mlimages.errors import InputError


class InboxQueue:
    """The `put` a `ProgressSender` calls, posting to the driver's inbox actor without waiting.

    Every message names its attempt (`owner`): the driver counts a retried attempt's lines once.
    """

    def __init__(self, inbox, owner: int):
        self.inbox, self.owner = inbox, owner

    def put(self, message) -> None:
        self.inbox.put.remote((self.owner, message))


def run_attempt(task: ShardTask, token: str, owner: int, budget, inbox) -> tuple:
    """Run one attempt on this node.

    Returns:
        ``("done", token, tally, peak_rss_kb, node_id)``, or ``("input", token, message, where)``.
    """
    limit_malloc_arenas()
    node = ray.get_runtime_context().get_node_id()
    queue = InboxQueue(inbox, owner)
    ray.get(inbox.put.remote((owner, ("started", node, os.getpid()))))  # known to the driver before any work
    folder = seed_attempt(task.out, task.shard_index, token)
    config = task.settings.config
    remote_budget = RemoteBudget(budget, owner)
    gate = HostGate(config.per_host_concurrency, total=config.concurrency, budget=remote_budget)
    sender = ProgressSender(queue)
    here = ShardTask(task.list_path, task.shard_index, task.settings, Path(folder))
    try:
        tally = run_tasks([here], Services(gate, sender))
    except InputError as error:
        sender.flush()
        return ("input", token, error.message, error.where)
    finally:
        remote_budget.close()  # the worker process runs more attempts: leave no thread behind
    sender.flush()
    return ("done", token, tally, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, node)


remote_attempt = ray.remote(num_cpus=1, max_retries=0, runtime_env=WORKER_ENV)(run_attempt)


class Inbox:
    """The driver's mailbox for progress batches (an actor on the driver's node)."""

    def __init__(self):
        self.messages: list = []

    def put(self, message) -> None:
        self.messages.append(message)

    def drain(self) -> list:
        messages, self.messages = self.messages, []
        return messages
