"""The `cluster:` section of params.yaml: which engine runs the data stages, and where.

`local` runs the shard tasks in this machine's processes. `ray` submits them to a Ray cluster from
the same stage scripts: scale is a params change, never a code fork. Like every section, its values
live only in params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlimages.errors import InputError


@dataclass(frozen=True)
class ClusterConfig:
    """How the data stages are run.

    Args:
        engine: ``local`` (this machine's processes) or ``ray`` (tasks on a Ray cluster).
        address: the Ray cluster to join: ``auto`` (the one `ray start` made on this host), or
            ``HOST:PORT`` of its head; empty starts a private one-node Ray in this process.
        shard_attempts: tries per download task when its node or worker dies (the retry resumes
            from what the lost attempt stored).
        node_wait_s: how long the driver waits with no live node that can run a shard task (every
            worker node gone, or none joined yet) before it stops the run, naming the shards not
            done; what was committed is kept and a rerun resumes per sample.
        tasks_in_flight: download / transcode tasks submitted at once; 0: one per CPU of the cluster.
        shards_per_task: consecutive shards one download task carries through one worker pool: a
            shard's stragglers overlap the next one's fetches; a lost task is retried whole (from
            what it stored), and the run's last tasks balance worse the larger it is.
        records_chunk: images per transcode task of the records build.
    """

    engine: Literal["local", "ray"]
    address: str
    shard_attempts: int
    node_wait_s: float
    tasks_in_flight: int
    shards_per_task: int
    records_chunk: int

    def __post_init__(self):
        if self.shard_attempts < 1:
            raise InputError(f"must be at least 1, got {self.shard_attempts}", "params.yaml: cluster.shard_attempts")
        if self.node_wait_s <= 0:
            raise InputError(f"must be more than 0 seconds, got {self.node_wait_s}", "params.yaml: cluster.node_wait_s")
        if self.tasks_in_flight < 0:
            raise InputError(f"must be 0 or more, got {self.tasks_in_flight}", "params.yaml: cluster.tasks_in_flight")
        if self.shards_per_task < 1:
            raise InputError(f"must be at least 1, got {self.shards_per_task}", "params.yaml: cluster.shards_per_task")
        if self.records_chunk < 1:
            raise InputError(f"must be at least 1, got {self.records_chunk}", "params.yaml: cluster.records_chunk")


def require_ray() -> None:
    """Ray is imported only when the params ask for it: the local engine needs no Ray installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError("engine ray needs the ray extra: pip install 'mlimages[ray]'",
                         "params.yaml: cluster.engine") from None
