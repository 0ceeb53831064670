"""The cluster's host budget: the local engine's coordinator, reached over TCP, so per-host caps and pauses
hold for the whole cluster.

Why one shared budget and not a partition of the list by host: the lists mix hosts in every shard
(the release's 17.6M URLs come from tens of thousands of hosts, a few of them holding millions), so
a partition by host would either break the shard layout that resume and the record builder rely on
(shard i = lines i*N+1 ..) or leave the nodes that got a big host busy long after the others. With
one shared budget every shard stays a plain range of lines, any node can run any shard, and a 503
seen on one node pauses the host for all of them, as the coordinator does for local processes.

Why the coordinator process and not a Ray actor: a slot costs two calls (take, give back), and a
Ray actor call took about 0.6 ms of CPU in the actor and as much in the caller on the benchmark's
machine, against 0.04 ms each for the coordinator over TCP; at two calls per request, the actor was
most of what the Ray engine cost over the local one. The coordinator runs on the driver's machine
(a lost worker node never takes it along) as a child of the driver that dies with it, and listens
on the address Ray knows the driver's node by, on a free port, with a key made for the run: the
nodes already reach the driver there on free ports (its own Ray worker listens on one). Each calling
thread has its own connection, served by its own thread, so a wait for a busy host blocks only its
caller, and an attempt's gate gives slots back in batches (`hosts.BatchedReleases`).

Every attempt of a shard task is an owner of its own: when an attempt is lost, the driver calls
`forget_owner` with its number, which frees the slots it held and refuses it any more.
"""

from __future__ import annotations

import logging
import math
import os

import ray

from mlimages.download.coordinator import BudgetManager, CoordinatorAddress, start_coordinator
from mlimages.download.hosts import HostBudget

log = logging.getLogger(__name__)
LOST_COORDINATOR = 75  # the worker's exit status when the coordinator is gone (EX_TEMPFAIL)


def start_budget(start: int, floor: int, ceiling: int) -> tuple[BudgetManager, HostBudget, CoordinatorAddress]:
    """Start the run's coordinator on this (the driver's) machine, reachable from every node.

    Returns:
        The coordinator (`.shutdown()` at the end), a proxy of its budget, and what a node needs to connect.
    """
    authkey = os.urandom(32)
    manager, budget = start_coordinator(start, floor, ceiling, (ray.util.get_node_ip_address(), 0), authkey)
    return manager, budget, CoordinatorAddress(manager.address, authkey)


class RemoteBudget:
    """What a `HostGate` with `batch_releases` calls on a node: the run's budget, as attempt `owner`.

    `owner` replaces the process id the gate passes, since process ids repeat across nodes. A
    coordinator that cannot be reached means the driver died or is cut off: the worker process then
    ends at once (`os._exit`), as a lost node would, rather than let each line fail as an unexpected
    error and be recorded so (a rerun would not fetch it again). What the attempt stored is kept,
    and its retry or a rerun resumes from there.
    """

    def __init__(self, address: CoordinatorAddress, owner: int):
        self.address, self.owner = address, owner
        self.budget = self._call(address.budget)

    def acquire(self, host: str, max_pause_s: float = math.inf, owner: int = 0) -> tuple[int | None, float, bool]:
        return self._call(self.budget.acquire, host, max_pause_s, self.owner)

    def release_many(self, releases: list[tuple[int, str]]) -> None:
        self._call(self.budget.release_many, releases)

    def back_off(self, host: str, seconds: float) -> None:
        self._call(self.budget.back_off, host, seconds)

    def pause_s(self, host: str) -> float:
        return self._call(self.budget.pause_s, host)

    def cap(self, host: str) -> int:
        return self._call(self.budget.cap, host)

    def _call(self, method, *args):
        try:
            return method(*args)
        except (OSError, EOFError) as error:
            log.error("attempt %d: the run's coordinator at %s:%d is gone (%s); this worker stops, its shards "
                      "resume from what they stored", self.owner, *self.address.address, error)
            logging.shutdown()
            os._exit(LOST_COORDINATOR)
