"""How long the cluster has had no node that can run a task; a run stops after `node_wait_s`.

Ray keeps a task that no live node can run waiting until such a node joins: with every worker
node gone, a driver would wait for ever. Our tasks (a download shard, a chunk of transcoding) take
one CPU, so a driver asks the cluster (`ray.nodes()`, once a second) for the CPUs of its live nodes;
after `node_wait_s` in a row without one, it stops with `describe()` in its one line. A node
joining in time resets the clock.
Ray marks a lost node dead after its health checks fail (seconds to tens of seconds), so the run
stops that long plus `node_wait_s` after the last node went.
"""

from __future__ import annotations

import time

import ray

CHECK_EVERY_S = 1.0


class NodeWatch:
    """The cluster's live nodes and CPUs, checked at most once a second."""

    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        self.alive, self.cpus = 0, 0.0
        self.without_since: float | None = None
        self.checked = -CHECK_EVERY_S

    def check(self, now: float | None = None) -> bool:
        """Look at the cluster again if due; True when it has been without a CPU for `wait_s`."""
        now = time.monotonic() if now is None else now
        if now - self.checked >= CHECK_EVERY_S:
            self.checked = now
            live = [node for node in ray.nodes() if node.get("Alive")]
            self.alive = len(live)
            self.cpus = sum(node.get("Resources", {}).get("CPU", 0.0) for node in live)
            self.note(now)
        return self.without_since is not None and now - self.without_since >= self.wait_s

    def note(self, now: float) -> None:
        """Start or reset the clock from the CPUs last seen."""
        if self.cpus >= 1:
            self.without_since = None
        elif self.without_since is None:
            self.without_since = now

    def describe(self) -> str:
        """Why the run stops, for its one line."""
        return (f"no Ray node could run a task for {self.wait_s:g} s (params.yaml: cluster.node_wait_s; "
                f"{self.alive} nodes alive, {self.cpus:g} CPUs)")


def shard_ranges(shards: list[int], most: int = 8) -> str:
    """``0-3, 7, 9-10`` for [0, 1, 2, 3, 7, 9, 10]; at most `most` ranges, then how many more shards."""
    ranges: list[list[int]] = []
    for index in sorted(set(shards)):
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges[:most])
    rest = sum(b - a + 1 for a, b in ranges[most:])
    return f"shards {text}" + (f" and {rest} more" if rest else "")
