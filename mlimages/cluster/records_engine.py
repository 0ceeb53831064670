"""The Ray engine of the records build: the transcoding runs as Ray tasks, the shards are written here.

Why the driver writes: a TFRecord shard closes at `shard_bytes` or at a record count, and the bytes
are only known after transcoding, so where one shard ends depends on every image before it. The
byte-identical guarantee therefore needs one writer consuming results in input order, which is
what `build.write_split` already does; only its map step moves. `ray_map_ordered` cuts the ordered
sample stream into chunks of `records_chunk` images, runs `function` over each chunk as a Ray task
on whichever node, and yields the results in input order: the assignment of images to chunks and of
records to shards is a function of the inputs alone, never of which worker ran what. A sample names
where its image lies on the shared file system (`image_shards.StoredImage`), and the task reads it
there: reading, checking and transcoding are nearly all of the build's CPU time, and the images
never pass through the driver or Ray's object stores. The driver reads the samples' metadata and
appends the records, which is I/O.

At most `tasks_in_flight` chunks are out at once (one per cluster CPU by default), so the driver
holds that many chunks of samples and results, whatever the split's size. A chunk whose worker or
node is lost is rerun by Ray (`max_retries`): transcoding is a pure function, so a rerun returns
the same bytes. With no live node that can run a chunk for `node_wait_s` (`node_watch`), the build
stops with `ClusterLost` instead of waiting for ever.
"""

from __future__ import annotations

import collections
import functools
from typing import Callable, Iterable, Iterator

import ray

from mlimages.cluster.config import ClusterConfig
from mlimages.cluster.connect import WORKER_ENV, connect
from mlimages.cluster.mappers import ClusterLost
from mlimages.cluster.node_watch import NodeWatch
from mlimages.errors import InputError

POLL_S = 0.5


def transcode_chunk(function: Callable, items: list) -> list:
    return [function(item) for item in items]


remote_chunk = ray.remote(num_cpus=1, max_retries=3, runtime_env=WORKER_ENV)(transcode_chunk)


def ray_map_ordered(function: Callable, items: Iterable, num_workers: int, cluster: ClusterConfig) -> Iterator[tuple]:
    """Yield ``(item, function(item))`` in input order, computed by Ray tasks (`num_workers` is the
    local engine's thread count: unused here, where each task takes one CPU of the cluster)."""
    connect(cluster.address)
    limit = cluster.tasks_in_flight or max(1, int(ray.cluster_resources().get("CPU", 1)))
    shipped, watch = ray.put(function), NodeWatch(cluster.node_wait_s)
    pending: collections.deque = collections.deque()
    for chunk in chunks(items, cluster.records_chunk):
        pending.append((chunk, remote_chunk.remote(shipped, chunk)))
        if len(pending) > limit:
            yield from _take(pending, watch)
    while pending:
        yield from _take(pending, watch)


def _take(pending: collections.deque, watch: NodeWatch) -> Iterator[tuple]:
    """The oldest chunk's results, once its task is done; `ClusterLost` when no node could run it for too long."""
    chunk, ref = pending[0]
    while not ray.wait([ref], timeout=POLL_S)[0]:
        if watch.check():
            _cancel(pending)
            raise ClusterLost(f"{watch.describe()}: the split was not written; rerun the same command once a "
                              "node is back")
    pending.popleft()
    try:
        results = ray.get(ref)
    except ray.exceptions.RayTaskError as error:  # an image the task could not read: the local engine's error
        _cancel(pending)
        raise error.cause if isinstance(error.cause, InputError) else error
    yield from zip(chunk, results)


def _cancel(pending: collections.deque) -> None:
    for _, waiting in pending:
        ray.cancel(waiting, force=True)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def records_mapper(cluster: ClusterConfig) -> Callable:
    return functools.partial(ray_map_ordered, cluster=cluster)
