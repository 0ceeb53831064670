"""The run's host budget as a Ray actor, so per-host caps and pauses hold for the whole cluster.

Why an actor and not a partition of the list by host: the lists mix hosts in every shard (the
release's 17.6M URLs come from tens of thousands of hosts, a few of them holding millions), so a
partition by host would either break the shard layout that resume and the record builder rely on
(shard i = lines i*N+1 ..) or leave the nodes that got a big host busy long after the others. With
one shared budget every shard stays a plain range of lines, any node can run any shard, and a 503
seen on one node pauses the host for all of them, as `coordinator` does for the local processes.

The actor holds the same `HostBudget` the local coordinator serves, on the driver's node (a lost
worker node never takes it along). Waiting for a host's slot blocks one of the actor's threads, so
it gets one thread per fetch worker the cluster can run at once. A slot costs two actor calls,
around a millisecond each on a LAN, next to tens of milliseconds of a real request, and the gates
give slots back in batches (`HostGate(batch_releases=True)`).

Every attempt of a shard task is an owner of its own: when an attempt is lost, the driver calls
`forget_owner` with its number, which frees the slots it held and refuses it any more.
"""

from __future__ import annotations

import math

import ray

from mlimages.cluster.connect import on_this_node
from mlimages.download.hosts import HostBudget


def start_budget(start: int, floor: int, ceiling: int, threads: int):
    """Start the budget actor on this (the driver's) node; returns its handle."""
    actor = ray.remote(HostBudget).options(
        num_cpus=0, max_concurrency=max(threads, 16), max_restarts=0,
        scheduling_strategy=on_this_node(),
    )
    return actor.remote(start, floor, ceiling)


class RemoteBudget:
    """What a `HostGate` calls on a node: the `HostBudget` methods, answered by the actor.

    `owner` is this attempt's number: it replaces the process id the gate passes, since process
    ids repeat across nodes.
    """

    def __init__(self, actor, owner: int):
        self.actor, self.owner = actor, owner

    def acquire(self, host: str, max_pause_s: float = math.inf, owner: int = 0) -> tuple[int | None, float, bool]:
        return ray.get(self.actor.acquire.remote(host, max_pause_s, self.owner))

    def release(self, ticket: int, signal: str) -> None:
        ray.get(self.actor.release.remote(ticket, signal))

    def release_many(self, releases: list[tuple[int, str]]) -> None:
        ray.get(self.actor.release_many.remote(releases))

    def back_off(self, host: str, seconds: float) -> None:
        ray.get(self.actor.back_off.remote(host, seconds))

    def pause_s(self, host: str) -> float:
        return ray.get(self.actor.pause_s.remote(host))

    def cap(self, host: str) -> int:
        return ray.get(self.actor.cap.remote(host))
