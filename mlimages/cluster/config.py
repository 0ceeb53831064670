"""The `cluster:` section of params.yaml: which engine runs the data stages, and where.

`local` (the default) runs the shard tasks in this machine's processes. `ray` submits them to a Ray
cluster from the same stage scripts: scale is a params change, never a code fork. A params file
without the section runs locally, so older params files keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlimages.config import DEFAULT_PARAMS, build_config, read_params_file
from mlimages.errors import InputError


@dataclass(frozen=True)
class ClusterConfig:
    """How the data stages are run.

    Args:
        engine: ``local`` (this machine's processes) or ``ray`` (tasks on a Ray cluster).
        address: the Ray cluster to join: ``auto`` (the one `ray start` made on this host), or
            ``HOST:PORT`` of its head; empty starts a private one-node Ray in this process.
        shard_attempts: tries per shard task when its node or worker dies (the retry resumes
            from what the lost attempt stored).
        tasks_in_flight: shard tasks submitted at once; 0: one per CPU of the cluster.
        records_chunk: images per transcode task of the records build.
    """

    engine: Literal["local", "ray"] = "local"
    address: str = "auto"
    shard_attempts: int = 3
    tasks_in_flight: int = 0
    records_chunk: int = 64

    def __post_init__(self):
        if self.shard_attempts < 1:
            raise InputError(f"must be at least 1, got {self.shard_attempts}", "params.yaml: cluster.shard_attempts")
        if self.tasks_in_flight < 0:
            raise InputError(f"must be 0 or more, got {self.tasks_in_flight}", "params.yaml: cluster.tasks_in_flight")
        if self.records_chunk < 1:
            raise InputError(f"must be at least 1, got {self.records_chunk}", "params.yaml: cluster.records_chunk")


def load_cluster_config(path: str | Path = DEFAULT_PARAMS) -> ClusterConfig:
    """Read the `cluster:` section; a file without one gets the local engine."""
    section = read_params_file(path).get("cluster")
    if section is None:
        return ClusterConfig()
    return build_config(ClusterConfig, section, where=f"{path}: cluster")
