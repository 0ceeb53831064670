"""The download engine the `cluster:` params choose: this machine's processes, or Ray tasks."""

from __future__ import annotations

import functools
from typing import Callable

from mlimages.cluster.config import ClusterConfig, require_ray
from mlimages.download.engines import run_local


def download_engine(cluster: ClusterConfig) -> Callable:
    """`engine(tasks, progress) -> Tally` for `download.run.download`."""
    if cluster.engine == "local":
        return run_local
    require_ray()
    from mlimages.cluster.download_engine import run_ray

    return functools.partial(run_ray, cluster=cluster)
