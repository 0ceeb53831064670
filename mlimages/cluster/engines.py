"""The engine the `cluster:` params choose, for each data stage.

Ray is imported only when the params ask for it: the local engine needs no Ray installed.
"""

from __future__ import annotations

import functools
from typing import Callable

from mlimages.cluster.config import ClusterConfig
from mlimages.download.engines import run_local
from mlimages.errors import InputError
from mlimages.records.ordered_map import map_ordered


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError("engine ray needs the ray extra: pip install 'mlimages[ray]'",
                         "params.yaml: cluster.engine") from None


def download_engine(cluster: ClusterConfig) -> Callable:
    """`engine(tasks, progress) -> Tally` for `download.run.download`."""
    if cluster.engine == "local":
        return run_local
    _require_ray()
    from mlimages.cluster.download_engine import run_ray

    return functools.partial(run_ray, cluster=cluster)


def records_mapper(cluster: ClusterConfig) -> Callable:
    """The map step of `records.build.write_split`: threads here, or Ray tasks."""
    if cluster.engine == "local":
        return map_ordered
    _require_ray()
    from mlimages.cluster.records_engine import records_mapper as ray_mapper

    return ray_mapper(cluster)
