"""The map step of the records build that the `cluster:` params choose: threads here, or Ray tasks.

Apart from `engines` so that build_tfrecords depends on no downloader code.
"""

from __future__ import annotations

from typing import Callable

from mlimages.cluster.config import ClusterConfig, require_ray
from mlimages.records.ordered_map import map_ordered


class ClusterLost(Exception):
    """The Ray engine had no node to run the build's tasks for `cluster.node_wait_s`: the split is not written."""


def records_mapper(cluster: ClusterConfig) -> Callable:
    """The map step of `records.build.write_split`."""
    if cluster.engine == "local":
        return map_ordered
    require_ray()
    from mlimages.cluster.records_engine import records_mapper as ray_mapper

    return ray_mapper(cluster)
