"""The run's host budget as a Ray actor, so per-host caps and pauses hold for the whole cluster.

Why an actor and not a partition of the list by host: the lists mix hosts in every shard (the
release's 17.6M URLs come from tens of thousands of hosts, a few of them holding millions), so a
partition by host would either break the shard layout that resume and the record builder rely on
(shard i = lines i*N+1 ..) or leave the nodes that got a big host busy long after the others. With
one shared budget every shard stays a plain range of lines, any node can run any shard, and a 503
seen on one node pauses the host for all of them, as `coordinator` does for the local processes.

The actor holds the same `HostBudget` the local coordinator serves, on the driver's node (a lost
worker node never takes it along). Waiting for a host's slot blocks one of the actor's threads, and
a cluster can run far more fetch workers than an actor can have threads, so waits have their own
bounded group of threads (`WAIT_THREADS`) and end after `WAIT_S` with "not yet" (the caller asks
again); releases, pauses and the rest have another group, so a slot can always be given back even
while every waiting thread is busy. A slot costs two actor calls, around a millisecond each on a
LAN, next to tens of milliseconds of a real request, and an attempt's gate gives slots back in
batches from a thread of its own (`hosts.BatchedReleases`), which the attempt ends when it ends: a
Ray worker process runs attempt after attempt, and a thread left behind per attempt (with the actor
handles it holds) would make the worker grow with the number of shards, that is with the list.

Every attempt of a shard task is an owner of its own: when an attempt is lost, the driver calls
`forget_owner` with its number, which frees the slots it held and refuses it any more.
"""

from __future__ import annotations

import math

import ray

from mlimages.cluster.connect import on_this_node
from mlimages.download.hosts import NOT_YET, HostBudget


WAIT_THREADS, OTHER_THREADS, WAIT_S = 256, 8, 0.5


@ray.remote(concurrency_groups={"waits": WAIT_THREADS})
class BudgetActor(HostBudget):
    """`HostBudget` served by Ray: `acquire` in the "waits" group, every other call in the default group."""

    @ray.method(concurrency_group="waits")
    def acquire(self, host: str, max_pause_s: float = math.inf, owner: int = 0,
                give_up_s: float = math.inf) -> tuple[int | None, float, bool]:
        return super().acquire(host, max_pause_s, owner, give_up_s)


def start_budget(start: int, floor: int, ceiling: int):
    """Start the budget actor on this (the driver's) node; returns its handle."""
    actor = BudgetActor.options(num_cpus=0, max_concurrency=OTHER_THREADS, max_restarts=0,
                                scheduling_strategy=on_this_node())
    return actor.remote(start, floor, ceiling)


class RemoteBudget:
    """What a `HostGate` with `batch_releases` calls on a node: the `HostBudget` methods, answered by the actor.

    `owner` is this attempt's number: it replaces the process id the gate passes, since process
    ids repeat across nodes.
    """

    def __init__(self, actor, owner: int):
        self.actor, self.owner = actor, owner

    def acquire(self, host: str, max_pause_s: float = math.inf, owner: int = 0) -> tuple[int | None, float, bool]:
        while True:
            answer = ray.get(self.actor.acquire.remote(host, max_pause_s, self.owner, WAIT_S))
            if answer[0] is not None or answer[1] != NOT_YET:
                return answer

    def release_many(self, releases: list[tuple[int, str]]) -> None:
        ray.get(self.actor.release_many.remote(releases))

    def back_off(self, host: str, seconds: float) -> None:
        ray.get(self.actor.back_off.remote(host, seconds))

    def pause_s(self, host: str) -> float:
        return ray.get(self.actor.pause_s.remote(host))

    def cap(self, host: str) -> int:
        return ray.get(self.actor.cap.remote(host))
