"""The nodes' link to the run's coordinator on the driver's machine: the cluster-wide host budget and the
progress inbox.

Why one shared budget and not a partition of the list by host: the lists mix hosts in every shard
(the release's 17.6M URLs come from tens of thousands of hosts, a few of them holding millions), so
a partition by host would either break the shard layout that resume and the record builder rely on
(shard i = lines i*N+1 ..) or leave the nodes that got a big host busy long after the others. With
one shared budget every shard stays a plain range of lines, any node can run any shard, and a 503
seen on one node pauses the host for all of them, as the coordinator does for local processes.

Why the local engine's coordinator process and not a Ray actor: a slot costs two calls (take, give
back), and a Ray actor call took about 0.6 ms of CPU in the actor and as much in the caller on the
benchmark's machine, against 0.04 ms each for the coordinator over TCP; at two calls per request,
the actor was most of what the Ray engine cost over the local one. The coordinator runs on the
driver's machine (a lost worker node never takes it along) as a child of the driver that dies with
it, and listens on the address Ray knows the driver's node by, on a free port, with a key made for
the run: the nodes already reach the driver there on free ports (its own Ray worker listens on
one). Each calling thread has its own connection, served by its own thread, so a wait for a busy
host blocks only its caller, and an attempt's gate gives slots back in batches
(`hosts.BatchedReleases`). The attempts post their progress to the coordinator's inbox, which the
driver drains.

Every attempt of a shard task is an owner of its own: when an attempt is lost, the driver calls
`forget_owner` with its number, which frees the slots it held and refuses it any more. The other way
round, a coordinator that a node cannot reach means the driver died or is cut off: the worker
process then ends at once (`reach`), as a lost node would, rather than let each line fail as an
unexpected error and be recorded so (a rerun would not fetch it again). What the attempt stored is
kept, and its retry or a rerun resumes from there.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Callable

import ray

from mlimages.download.coordinator import CoordinatorAddress, CoordinatorManager, start_coordinator
from mlimages.download.hosts import HostBudget

log = logging.getLogger(__name__)
LOST_COORDINATOR = 75  # a worker's exit status when the coordinator is gone (EX_TEMPFAIL)


def start_run_coordinator(start: int, floor: int, ceiling: int
                          ) -> tuple[CoordinatorManager, HostBudget, CoordinatorAddress]:
    """Start the run's coordinator on this (the driver's) machine, reachable from every node.

    Returns:
        The coordinator (`.inbox()`; `.shutdown()` at the end), a proxy of its budget, and what a node
        needs to connect.
    """
    authkey = os.urandom(32)
    manager, budget = start_coordinator(start, floor, ceiling, (ray.util.get_node_ip_address(), 0), authkey)
    return manager, budget, CoordinatorAddress(manager.address, authkey)


def reach(method: Callable, *args):
    """Call the coordinator; one that cannot be reached ends this worker process (see the module's doc)."""
    try:
        return method(*args)
    except (OSError, EOFError) as error:
        log.error("the run's coordinator cannot be reached (%s: %s): the driver died, or this node cannot reach "
                  "the driver's host on a free TCP port; this worker stops, its shards resume from what they stored",
                  type(error).__name__, error)
        logging.shutdown()
        os._exit(LOST_COORDINATOR)


class RemoteBudget:
    """What a `HostGate` with `batch_releases` calls on a node: the coordinator's budget, as attempt `owner`.

    `owner` replaces the process id the gate passes, since process ids repeat across nodes.
    """

    def __init__(self, budget: HostBudget, owner: int):
        self.budget, self.owner = budget, owner

    def acquire(self, host: str, max_pause_s: float = math.inf, owner: int = 0) -> tuple[int | None, float, bool]:
        return reach(self.budget.acquire, host, max_pause_s, self.owner)

    def release_many(self, releases: list[tuple[int, str]]) -> None:
        reach(self.budget.release_many, releases)

    def back_off(self, host: str, seconds: float) -> None:
        reach(self.budget.back_off, host, seconds)

    def pause_s(self, host: str) -> float:
        return reach(self.budget.pause_s, host)

    def cap(self, host: str) -> int:
        return reach(self.budget.cap, host)


class InboxQueue:
    """The `put` a `ProgressSender` calls, posting to the coordinator's inbox.

    Every message names its attempt (`owner`): the driver counts a retried attempt's lines once.
    """

    def __init__(self, inbox, owner: int):
        self.inbox, self.owner = inbox, owner

    def put(self, message) -> None:
        reach(self.inbox.put, (self.owner, message))
