"""Joining the Ray cluster the `cluster:` params name, and what the driver asks it.

`address: auto` joins the cluster `ray start` made on this host, `HOST:PORT` a remote head; an
empty address starts a private one-node Ray inside this process (a laptop trying the engine).
A driver already connected (a test's cluster, a second stage in one process) is reused.
"""

from __future__ import annotations

import ray

from mlimages.errors import InputError

# The runtime environment of every task: MALLOC_ARENA_MAX from the worker's start, since Ray's own
# threads allocate before a task could cap the arenas.
WORKER_ENV = {"env_vars": {"MALLOC_ARENA_MAX": "2"}}


def connect(address: str) -> None:
    """Connect this process to the cluster at `address` (once)."""
    if ray.is_initialized():
        return
    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=True,
                 logging_level="WARNING", configure_logging=False)
    except ConnectionError as error:
        raise InputError(f"no Ray cluster at {address!r} ({error}); start one with `ray start --head`",
                         "params.yaml: cluster.address") from None

